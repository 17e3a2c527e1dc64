"""Drives Python's OFREP provider (openfeature-provider-ofrep with openfeature-sdk) against the
server at argv[1] with the token argv[2]; prints one JSON object of evaluation details for the
Rust test to check."""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def plain(v):
    return getattr(v, "value", v)


def details(d):
    return {
        "value": d.value,
        "variant": d.variant,
        "reason": plain(d.reason),
        "errorCode": plain(d.error_code),
        "metadata": dict(d.flag_metadata or {}),
    }


def main():
    base, token = sys.argv[1], sys.argv[2]
    api.set_provider(
        OFREPProvider(base, headers_factory=lambda: {"Authorization": f"Bearer {token}"})
    )
    c = api.get_client()
    free = EvaluationContext("u-1", {"plan": "free"})
    pro = EvaluationContext("u-2", {"plan": "pro"})
    gold = EvaluationContext(
        None,
        {"kind": "multi", "user": {"targetingKey": "u-1"}, "org": {"targetingKey": "acme", "tier": "gold"}},
    )
    out = {
        "bool": details(c.get_boolean_details("new-dashboard", False, free)),
        "string": details(c.get_string_details("theme", "none", free)),
        "targeted": details(c.get_string_details("theme", "none", pro)),
        "int": details(c.get_integer_details("max-upload-mb", 0, free)),
        "float": details(c.get_float_details("ratio", 0.0, free)),
        "object": details(c.get_object_details("layout", {}, free)),
        "multi": details(c.get_boolean_details("org-beta", False, gold)),
        "missing": details(c.get_boolean_details("nope", True, free)),
        "mismatch": details(c.get_integer_details("theme", 7, free)),
    }
    print(json.dumps(out))
    api.shutdown()


if __name__ == "__main__":
    main()
