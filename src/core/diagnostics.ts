/** A finding about the user's input or the live system, with where it is and what to do. */
export interface Diagnostic {
  readonly severity: 'error' | 'warning';
  /** Stable code, e.g. CONFIG_UNKNOWN_KEY, RULE_SUBNET_OVERLAP, PREFLIGHT_IOMMU_OFF. */
  readonly code: string;
  readonly message: string;
  /** What the user can do about it. */
  readonly remedy: string;
  readonly location?: { readonly file: string; readonly line: number; readonly column: number };
  /** Path inside the document, "wans.1.monitorIps.0". */
  readonly path?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.location ? `${d.location.file}:${d.location.line}:${d.location.column}: ` : '';
  const path = d.path ? ` (at ${d.path})` : '';
  return `${where}${d.severity}: ${d.message}${path}\n  remedy: ${d.remedy}`;
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}
