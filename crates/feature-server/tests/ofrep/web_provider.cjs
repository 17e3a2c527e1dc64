// Drives Node's run of the OFREP web provider (@openfeature/ofrep-web-provider with
// @openfeature/web-sdk; EventSource from the `eventsource` package, as browsers have it)
// against the server at argv[2] with the API key argv[3]: bulk evaluation, then the change
// stream. Prints a JSON line `{"ready": ...}` once evaluated, then `{"changed": ...}` when the
// provider reports a configuration change, and exits.
const { EventSource } = require('eventsource');

// The provider connects to the stream after its first evaluation; the driver says it is ready
// once the stream is open, so that the change the test makes next cannot come before it.
let opened;
const streamOpen = new Promise((resolve) => (opened = resolve));
globalThis.EventSource = class extends EventSource {
  constructor(url, init) {
    super(url, init);
    this.addEventListener('open', () => opened());
  }
};
const { OpenFeature, ProviderEvents } = require('@openfeature/web-sdk');
const { OFREPWebProvider } = require('@openfeature/ofrep-web-provider');

const [base, token] = process.argv.slice(2);

function details(d) {
  return {
    value: d.value,
    variant: d.variant ?? null,
    reason: d.reason ?? null,
    errorCode: d.errorCode ?? null,
  };
}

(async () => {
  const provider = new OFREPWebProvider({
    baseUrl: base,
    headers: [['X-API-Key', token]],
    changeDetection: 'sse',
    cacheMode: 'disabled',
    disableVisibilityRefresh: true,
  });
  await OpenFeature.setContext({ targetingKey: 'u-2', plan: 'pro' });
  await OpenFeature.setProviderAndWait(provider);
  const c = OpenFeature.getClient();
  await streamOpen;
  c.addHandler(ProviderEvents.ConfigurationChanged, () => {
    console.log(JSON.stringify({ changed: details(c.getNumberDetails('ratio', 0)) }));
    OpenFeature.close().finally(() => process.exit(0));
  });
  console.log(
    JSON.stringify({
      ready: {
        targeted: details(c.getStringDetails('theme', 'none')),
        bool: details(c.getBooleanDetails('new-dashboard', false)),
        ratio: details(c.getNumberDetails('ratio', 0)),
        missing: details(c.getBooleanDetails('nope', true)),
        mismatch: details(c.getBooleanDetails('theme', false)),
      },
    }),
  );
  setTimeout(() => {
    console.error('no configuration change seen (or the stream never opened)');
    process.exit(2);
  }, 20000);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
