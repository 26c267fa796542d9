/**
 * Secrets never reach logs or error text. Every secret loaded is registered here, and every
 * string shown to a person or written to a file passes through `redact`.
 */
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join('***');
  }
  // Token headers and basic auth that might be echoed by a library.
  out = out.replace(/(PVEAPIToken=[^=\s]+=)[0-9a-fA-F-]{8,}/g, '$1***');
  out = out.replace(/(Authorization:\s*Basic\s+)[A-Za-z0-9+/=]+/gi, '$1***');
  return out;
}

export function clearSecretsForTests(): void {
  secrets.clear();
}
