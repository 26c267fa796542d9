export interface GlobalOptions {
  readonly debug: boolean;
  readonly credentials?: string;
}
