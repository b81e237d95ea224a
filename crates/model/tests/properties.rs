//! Property tests: the loader never panics, and valid manifests round-trip through YAML.

use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../examples/jsonrag/workers.yaml");
const IMAGE: &str = "apiVersion: reborn.dev/v1alpha1
kind: GoldImage
metadata: {name: img}
spec:
  template: {pveNode: pve1, vmid: 100}
  digest: sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
  trustedKeys: [ed25519:abababababababababababababababababababababababababababababababab]
";

/// A random edit of a text: delete, insert or duplicate a slice (on char boundaries).
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match e {
            Edit::Delete(at, len) => {
                let at = at % n;
                let end = (at + len).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            Edit::Insert(at, s) => {
                let at = (at % n).min(chars.len());
                chars.splice(at..at, s.chars());
            }
            Edit::Duplicate(at, len) => {
                let at = (at % n).min(chars.len());
                let end = (at + len).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), "[ -~\n\t:{}\\[\\]&*!|>'\"#-]{0,12}")
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), 0usize..200).prop_map(|(a, l)| Edit::Duplicate(a, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn loader_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = model::load_str("fuzz.yaml", &text);
    }

    #[test]
    fn loader_never_panics_on_yaml_like_text(text in "[a-zA-Z0-9 :{}\\[\\],\n-]{0,400}") {
        let _ = model::load_str("fuzz.yaml", &text);
    }

    #[test]
    fn loader_never_panics_on_edited_manifests(edits in prop::collection::vec(edit(), 1..6)) {
        let text = apply(EXAMPLE, &edits);
        if let Err(diags) = model::load_str("edited.yaml", &text) {
            // Rendering must not panic either, and every problem points into the file.
            let rendered = diags.to_string();
            let plural = if diags.len() == 1 { "" } else { "s" };
            let tail = format!("{} error{plural}", diags.len());
            prop_assert!(rendered.ends_with(&tail), "{}", rendered);
            prop_assert!(!diags.is_empty());
        }
    }

    #[test]
    fn generated_nodes_round_trip_through_yaml(
        name in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        role in "[a-z]{1,10}",
        cores in 1u16..=512,
        mib in 16u64..=(4u64 << 20),
        from in 101u32..1_000_000,
        span in 1u32..10_000,
        host in 2u8..=254,
        timeout_secs in 1u64..=model::Duration::MAX_SECS,
        surge in any::<bool>(),
        full in any::<bool>(),
        tcp in proptest::option::of(1u16..=65535),
    ) {
        let timeout = model::Duration::from_secs(timeout_secs).expect("in range");
        let memory = model::MemorySize::from_mib(mib).expect("in range");
        let (strategy, network) = if surge {
            ("SurgeFirst", "[{bridge: vmbr0}]".to_string())
        } else {
            ("StopFirst", format!("[{{bridge: vmbr0, address: 10.0.10.{host}/24, gateway: 10.0.10.1}}]"))
        };
        let network = if host == 1 { "[]".to_string() } else { network };
        let tcp = tcp.map(|p| format!(", tcp: {p}")).unwrap_or_default();
        let text = format!(
            "{IMAGE}---\napiVersion: reborn.dev/v1alpha1\nkind: Node\nmetadata: {{name: {name}, labels: {{role: {role}}}}}\nspec:\n  goldImage: img\n  vmids: {{from: {from}, to: {to}}}\n  placement: {{pveNodes: [pve1]}}\n  clone: {{mode: {mode}}}\n  resources: {{cores: {cores}, memory: {memory}}}\n  network: {network}\n  readiness: {{timeout: {timeout}{tcp}}}\n  replacement: {{strategy: {strategy}}}\n",
            to = from + span,
            mode = if full { "full" } else { "linked" },
        );
        let set = model::load_str("gen.yaml", &text).map_err(|d| TestCaseError::fail(format!("{d}\n{text}")))?;
        let node = &set.nodes[0];
        prop_assert_eq!(node.spec.resources.memory.mib(), mib);
        prop_assert_eq!(node.spec.readiness.timeout.as_secs(), timeout_secs);
        prop_assert_eq!(node.spec.vmids.len(), span + 1);
        let yaml = set.to_yaml().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = model::load_str("again.yaml", &yaml).map_err(|d| TestCaseError::fail(format!("{d}\n{yaml}")))?;
        prop_assert_eq!(set, again);
    }

    #[test]
    fn typed_values_round_trip_through_their_text(mib in 16u64..=u64::from(u32::MAX), secs in 1u64..=model::Duration::MAX_SECS) {
        let m = model::MemorySize::from_mib(mib).expect("in range");
        prop_assert_eq!(m.to_string().parse::<model::MemorySize>(), Ok(m));
        let d = model::Duration::from_secs(secs).expect("in range");
        prop_assert_eq!(d.to_string().parse::<model::Duration>(), Ok(d));
    }
}
