// Starts the open-source Unleash server for the integration tests of feature-unleash.
// Settings come from the environment (see scripts/unleash.sh): DATABASE_URL, DATABASE_SSL,
// INIT_ADMIN_API_TOKENS, INIT_CLIENT_API_TOKENS, HTTP_HOST, HTTP_PORT, CHECK_VERSION,
// SEND_TELEMETRY.
'use strict';

const unleash = require('unleash-server');

// A test server outlives one failed request: an error no handler caught is written to the log
// (scripts/test.sh prints its end when a test fails) instead of ending the process.
process.on('unhandledRejection', (err) => {
  console.error('unhandled rejection:', err);
});
process.on('uncaughtException', (err) => {
  console.error('uncaught exception:', err);
});

unleash
  .start({
    server: {
      host: process.env.HTTP_HOST || '127.0.0.1',
      port: Number(process.env.HTTP_PORT || 4242),
    },
    // The tests poll often; keep the server's own log quiet.
    logLevel: process.env.LOG_LEVEL || 'warn',
    // Loopback only: no version check, no telemetry (see also CHECK_VERSION and
    // SEND_TELEMETRY in scripts/unleash.sh, which the server reads as well).
    versionCheck: { enable: false },
    telemetry: false,
  })
  .catch((err) => {
    console.error('unleash-server failed to start:', err);
    process.exit(1);
  });
