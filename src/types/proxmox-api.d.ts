// proxmox-api ships its typings only beside its ES module build, which a CommonJS TypeScript
// project cannot reference; these are the two entry points dualwan uses (the package's runtime
// is loaded normally through its CommonJS build).
export interface ApiRequestable {
  doRequest(httpMethod: string, path: string, pathTemplate: string, params?: Record<string, unknown>): Promise<unknown>;
}
export declare function proxmoxApi(engine: ApiRequestable): unknown;
export default proxmoxApi;
