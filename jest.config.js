/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  // Every request the product sends to the Proxmox double is checked against both API schemas;
  // the teardown fails the run if any was invalid (test/contract).
  globalSetup: '<rootDir>/test/contract/global-setup.ts',
  globalTeardown: '<rootDir>/test/contract/global-teardown.ts',
  // Tests may reach loopback only: the guard refuses and logs anything else (test/helpers/net-guard.js).
  setupFiles: ['<rootDir>/test/helpers/net-guard.js'],
  maxWorkers: 2,
  testTimeout: 30000,
};
