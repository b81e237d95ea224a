//! `docs/manifests.md` is checked against the generated JSON Schema: every property name in
//! `manifests/schema/reborn.v1alpha1.json` appears in the reference as `` `name` ``.

use std::collections::BTreeSet;
use std::path::Path;

fn properties(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| properties(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| properties(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_property_is_documented_in_the_manifest_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("manifests/schema/reborn.v1alpha1.json"))
            .expect("schema file"),
    )
    .expect("schema is JSON");
    let docs = std::fs::read_to_string(root.join("docs/manifests.md")).expect("docs/manifests.md");
    let mut props = BTreeSet::new();
    properties(&schema, &mut props);
    assert!(
        props.len() > 30,
        "the walk found the schema's properties: {props:?}"
    );
    let missing: Vec<_> = props
        .iter()
        .filter(|p| !docs.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/manifests.md does not mention {missing:?}"
    );
}
