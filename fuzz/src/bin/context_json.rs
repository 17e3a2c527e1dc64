//! Context JSON: `Context::from_json` never panics, and a context it accepts survives a round
//! trip through `to_json`: same kinds, keys and attributes (their order may differ: attributes
//! are looked up by name), and `to_json` of the copy is the same JSON.

use feature_core::Context;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        let Ok(ctx) = Context::from_json(&value) else {
            return;
        };
        let json = ctx.to_json();
        let back = match Context::from_json(&json) {
            Ok(back) => back,
            Err(e) => panic!("{value} was accepted, but its JSON {json} is refused: {e}"),
        };
        assert_eq!(back.to_json(), json, "to_json of the round trip differs");
        assert_eq!(back.kind(), ctx.kind());
        assert_eq!(back.key(), ctx.key());
        assert_eq!(back.anonymous(), ctx.anonymous());
        assert!(back.kinds().eq(ctx.kinds()), "kinds of {json}");
        for kind in ctx.kinds() {
            assert_eq!(back.key_of(kind), ctx.key_of(kind), "key of kind {kind:?}");
        }
        assert_eq!(
            back.attributes().count(),
            ctx.attributes().count(),
            "{json}"
        );
        for (name, v) in ctx.attributes() {
            assert_eq!(back.get(name), Some(v), "attribute {name:?} of {json}");
        }
    });
}
