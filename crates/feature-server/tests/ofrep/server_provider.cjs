// Drives Node's OFREP server provider (@openfeature/ofrep-provider with @openfeature/server-sdk)
// against the server at argv[2] with the token argv[3]; prints one JSON object of evaluation
// details for the Rust test to check.
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

const [base, token] = process.argv.slice(2);

function details(d) {
  return {
    value: d.value,
    variant: d.variant ?? null,
    reason: d.reason ?? null,
    errorCode: d.errorCode ?? null,
    metadata: d.flagMetadata ?? {},
  };
}

(async () => {
  await OpenFeature.setProviderAndWait(
    new OFREPProvider({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } }),
  );
  const c = OpenFeature.getClient();
  const free = { targetingKey: 'u-1', plan: 'free' };
  const pro = { targetingKey: 'u-2', plan: 'pro' };
  const gold = { kind: 'multi', user: { targetingKey: 'u-1' }, org: { targetingKey: 'acme', tier: 'gold' } };
  const out = {
    bool: details(await c.getBooleanDetails('new-dashboard', false, free)),
    string: details(await c.getStringDetails('theme', 'none', free)),
    targeted: details(await c.getStringDetails('theme', 'none', pro)),
    int: details(await c.getNumberDetails('max-upload-mb', 0, free)),
    float: details(await c.getNumberDetails('ratio', 0, free)),
    object: details(await c.getObjectDetails('layout', {}, free)),
    multi: details(await c.getBooleanDetails('org-beta', false, gold)),
    missing: details(await c.getBooleanDetails('nope', true, free)),
    mismatch: details(await c.getNumberDetails('theme', 7, free)),
  };
  console.log(JSON.stringify(out));
  await OpenFeature.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
