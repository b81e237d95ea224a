//! The operator refuses to clone from a gold template that fails an attestation check: each
//! tamper case in the simulator holds the node with the reason, in an event (once) and in the
//! GoldImage's `Verified` condition. The untampered template clones.

mod scenario_support;

use model::attestation::{self, AttestationKey};
use pve_sim::{SimConfig, TemplateConfig};
use scenario_support::{
    GOLD, GOLD_DIGEST, Harness, OPERATOR, TEST_KEY_SEED, TEST_PUBLIC_KEY, UNTRUSTED_KEY_SEED,
    attestation, attested_template, node, with_attestation,
};

const CLONE: &str = "POST /nodes/{node}/qemu/{vmid}/clone";
const OTHER_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// The fast simulator whose template 9000 is `template`.
fn sim_with(template: TemplateConfig) -> SimConfig {
    let mut sim = SimConfig::fast();
    let slot = sim
        .templates
        .iter_mut()
        .find(|t| t.vmid == 9000)
        .expect("the default sim has template 9000");
    *slot = template;
    sim
}

fn manifests() -> String {
    format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    )
}

/// Runs a few passes against a tampered template and checks everything a user relies on:
/// no clone, the node held with the reason, the GoldImage condition, one event.
async fn assert_refused(template: TemplateConfig, code: &str) {
    let h = Harness::with_sim(
        &manifests(),
        operator::ControllerConfig::fast(OPERATOR),
        sim_with(template),
    )
    .await;
    for _ in 0..3 {
        let report = h.ctl.run_pass().await.expect("pass");
        h.ctl.settle().await;
        assert_eq!(
            report.started,
            0,
            "nothing may start: {:?}",
            h.ctl.last_plan()
        );
        assert_eq!(
            report.template_reads, 1,
            "one config read of the template per pass"
        );
    }
    assert_eq!(
        h.admin.request_count(CLONE),
        0,
        "no clone from a {code} template"
    );
    assert!(h.owned_vms().is_empty(), "{:?}", h.owned_vms());

    let plan = h.ctl.last_plan().expect("a plan");
    let hold = plan
        .holds
        .iter()
        .find(|hd| hd.node.as_str() == "worker-1")
        .unwrap_or_else(|| panic!("worker-1 is held: {plan}"));
    match &hold.blocked_by {
        planner::BlockedBy::TemplateUnverified { gold_image, detail } => {
            assert_eq!(gold_image, "gold");
            assert!(detail.starts_with(&format!("{code}: ")), "{detail}");
        }
        other => panic!("held by {other:?}, expected the template"),
    }
    assert_eq!(h.condition("worker-1", "Held"), "True");
    assert!(
        h.condition_message("worker-1", "Held").contains(code),
        "{}",
        h.condition_message("worker-1", "Held")
    );

    let (status, reason, message) = h.gold_condition("gold");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", code),
        "{message}"
    );
    assert!(message.contains("template 9000 on pve1"), "{message}");
    assert!(
        h.gold_status("gold")["verified"].is_null(),
        "a refused template is never remembered as verified"
    );

    let rejected = h.events_of("TemplateRejected");
    assert_eq!(
        rejected.len(),
        1,
        "one event per change, not per pass: {rejected:?}"
    );
    assert_eq!(rejected[0].data["reason"], code);
    assert_eq!(rejected[0].data["goldImage"], "gold");
    assert_eq!(rejected[0].data["vmid"], 9000);
    assert_eq!(rejected[0].data["nodes"], serde_json::json!(["worker-1"]));
    assert!(h.events_of("TemplateVerified").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_template_is_verified_and_cloned() {
    let h = Harness::new(&manifests()).await;
    h.converge().await;

    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);
    assert_eq!(h.condition("worker-1", "Held"), "False");
    let (status, reason, message) = h.gold_condition("gold");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Verified"),
        "{message}"
    );
    assert!(message.contains(TEST_PUBLIC_KEY), "{message}");
    assert!(message.contains(GOLD_DIGEST), "{message}");

    // The verified config digest is remembered under the GoldImage's uid, generation and
    // the template's VMID: it is the digest PVE reports for the template.
    let gold = h.gold_status("gold");
    let template_digest = h.admin.vm(9000).expect("template").digest;
    assert_eq!(gold["verified"]["configDigest"], template_digest.as_str());
    assert_eq!(gold["verified"]["generation"], 1);
    assert_eq!(gold["verified"]["vmid"], 9000);
    assert_eq!(gold["verified"]["key"], TEST_PUBLIC_KEY);
    assert_eq!(gold["observedGeneration"], 1);

    let verified = h.events_of("TemplateVerified");
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert!(h.events_of("TemplateRejected").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_key_is_the_one_the_gold_manifest_trusts() {
    let key = AttestationKey::from_seed(&TEST_KEY_SEED);
    assert_eq!(key.public_key().to_string(), TEST_PUBLIC_KEY);
    let set = model::load_str("gold.yaml", GOLD).expect("valid");
    assert_eq!(set.gold_images[0].spec.trusted_keys, vec![key.public_key()]);
    assert_eq!(set.gold_images[0].spec.digest.to_string(), GOLD_DIGEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_is_not_a_template_is_not_cloned_from() {
    let mut vm = attested_template(TemplateConfig::default());
    vm.template = false;
    assert_refused(vm, "NotATemplate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_without_attestation_is_not_cloned_from() {
    // The default sim template: a plain description, no attestation line.
    assert_refused(SimConfig::fast().templates[0].clone(), "NoAttestation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_signed_by_an_untrusted_key_is_not_cloned_from() {
    let signed = attestation("gold", GOLD_DIGEST, &UNTRUSTED_KEY_SEED);
    assert_refused(
        with_attestation(TemplateConfig::default(), &signed),
        "UntrustedKey",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_whose_attested_digest_differs_from_the_manifest_is_not_cloned_from() {
    let signed = attestation("gold", OTHER_DIGEST, &TEST_KEY_SEED);
    assert_refused(
        with_attestation(TemplateConfig::default(), &signed),
        "DigestMismatch",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_whose_signed_statement_was_edited_is_not_cloned_from() {
    let mut signed = attestation("gold", GOLD_DIGEST, &TEST_KEY_SEED);
    signed.statement.builder = "someone else".to_owned();
    let mut t = TemplateConfig::default();
    t.config.insert(
        "description".into(),
        attestation::to_description_line(&signed),
    );
    assert_refused(t, "BadSignature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_with_two_attestation_lines_is_not_cloned_from() {
    let a = attestation::to_description_line(&attestation("gold", GOLD_DIGEST, &TEST_KEY_SEED));
    let b = attestation::to_description_line(&attestation("gold", OTHER_DIGEST, &TEST_KEY_SEED));
    let mut t = TemplateConfig::default();
    t.config.insert("description".into(), format!("{a}\n{b}"));
    assert_refused(t, "MalformedAttestation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_template_holds_the_node_without_reading_configs() {
    let mut sim = SimConfig::fast();
    sim.templates.retain(|t| t.vmid != 9000);
    let h = Harness::with_sim(
        &manifests(),
        operator::ControllerConfig::fast(OPERATOR),
        sim,
    )
    .await;
    let report = h.ctl.run_pass().await.expect("pass");
    h.ctl.settle().await;
    assert_eq!(report.started, 0);
    assert_eq!(report.template_reads, 0);
    assert!(h.owned_vms().is_empty());
    let (status, reason, _) = h.gold_condition("gold");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TemplateNotFound")
    );
    assert_eq!(h.condition("worker-1", "Held"), "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refusal_is_visible_through_the_operator_api() {
    use axum::body::Body;
    use axum::http::Request;
    use operator::api::ApiState;
    use operator::api::auth::{ApiToken, Role, TokenSet};
    use tower::ServiceExt;

    let h = Harness::with_sim(
        &manifests(),
        operator::ControllerConfig::fast(OPERATOR),
        SimConfig::fast(),
    )
    .await;
    h.converge().await;

    let tokens = TokenSet::new(vec![ApiToken::new(
        "viewer",
        Role::Viewer,
        pve_client::Secret::new("viewer-token"),
    )]);
    let state = ApiState::new(
        h.store.clone(),
        h.handle.clone(),
        tokens,
        operator::metrics::Metrics::new(),
    );
    let get = |path: &str| {
        let state = state.clone();
        let req = Request::builder()
            .uri(path)
            .header("authorization", "Bearer viewer-token")
            .body(Body::empty())
            .expect("request");
        async move {
            let resp = operator::api::router(state)
                .oneshot(req)
                .await
                .expect("router answers");
            assert!(resp.status().is_success(), "{}", resp.status());
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")
        }
    };
    // `reborn get goldimages gold -o yaml` / `describe`: the condition as stored.
    let gold = get("/v1/goldimages/gold").await;
    let condition = &gold["status"]["conditions"][0];
    assert_eq!(condition["type"], "Verified", "{gold}");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "NoAttestation");
    // `reborn describe node worker-1`: held, with the reason.
    let node = get("/v1/nodes/worker-1").await;
    let held = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Held"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(held["status"], "True", "{node}");
    assert!(
        held["message"]
            .as_str()
            .unwrap_or_default()
            .contains("NoAttestation"),
        "{held}"
    );
    // `reborn events`: the rejection with its code.
    let events = get("/v1/events").await;
    let text = events.to_string();
    assert!(text.contains("TemplateRejected"), "{text}");
    assert!(text.contains("NoAttestation"), "{text}");
}
