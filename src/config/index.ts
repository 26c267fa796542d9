/** The config layer's public surface: load and check dualwan.yaml, and what it is made of. */
export { assertValidConfig, loadConfigFile, loadConfigText, type LoadOptions, type LoadResult } from './load';
export { normalizeConfig, defaultDhcpRange, defaultRouterAddress } from './normalize';
export { RULES, runRules, suggestLanSubnet, type Rule, type RuleContext, type RuleEntry } from './rules';
export { WrittenConfigSchema, type WrittenConfig, type WrittenConfigInput } from './schema';
export { MONITOR_PROFILES, monitorProfile } from './monitor-profiles';
export { defaultTemplatesDir, findPackageRoot, listVmTemplates, loadVmTemplate, VmTemplateSchema, type VmTemplate } from './templates';
export { buildJsonSchema, renderJsonSchema } from './json-schema';
