"""Runs a scenario through LaunchDarkly's own Python server-side SDK, for the comparison in
tests/launchdarkly_events.rs.

Usage: driver.py SCENARIO.json. The scenario names the stand-in's URIs, the SDK key, the
private attributes, the application tags and a list of steps (eval, track, identify,
all_flags_state, secure_mode_hash). The SDK polls the stand-in for flags and posts its events
to it; what the steps return (bootstrap states, hashes) is printed as one JSON list.
"""

import json
import sys

import ldclient
from ldclient import Context
from ldclient.config import Config


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    config = Config(
        spec["sdk_key"],
        base_uri=spec["base_uri"],
        events_uri=spec["events_uri"],
        stream_uri=spec["base_uri"],
        stream=False,
        private_attributes=spec.get("private_attributes", []),
        all_attributes_private=spec.get("all_attributes_private", False),
        application=spec.get("application", {}),
        diagnostic_opt_out=True,
    )
    client = ldclient.LDClient(config=config, start_wait=10)
    if not client.is_initialized():
        sys.exit("the SDK did not initialise against the stand-in")
    out = []
    for step in spec["steps"]:
        ctx = Context.from_dict(step["context"])
        if not ctx.valid:
            sys.exit("invalid context in the scenario: %s" % ctx.error)
        op = step["op"]
        if op == "eval":
            client.variation(step["flag"], ctx, step["default"])
        elif op == "track":
            client.track(step["event"], ctx, data=step.get("data"), metric_value=step.get("metric"))
        elif op == "identify":
            client.identify(ctx)
        elif op == "all_flags_state":
            state = client.all_flags_state(ctx, **step.get("options", {}))
            out.append(state.to_json_dict())
        elif op == "secure_mode_hash":
            out.append(client.secure_mode_hash(ctx))
        else:
            sys.exit("unknown step %r" % op)
    client.flush()
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
