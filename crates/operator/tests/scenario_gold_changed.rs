//! A template changed after it was verified (behind reborn's back, through the PVE API) is
//! refused until a person re-verifies it by changing or re-creating the GoldImage; the
//! remembered config digest survives a restart of the operator.

mod scenario_support;

use pve_client::{ConfigUpdate, NodeName, VmId};
use scenario_support::{GOLD, Harness, apply, client, node};
use store::{Expect, ResourceKey, Severity, Store};

const CLONE: &str = "POST /nodes/{node}/qemu/{vmid}/clone";

/// `PUT /nodes/pve1/qemu/9000/config` through the simulator's API, as a person with
/// `VM.Config.*` on the template could.
async fn edit_template(h: &Harness, update: ConfigUpdate) {
    let pve1 = NodeName::new("pve1").expect("node");
    client(&h.sim)
        .update_config(&pve1, VmId::new(9000).expect("vmid"), &update)
        .await
        .expect("template config updated");
}

fn template_description(h: &Harness) -> String {
    h.admin.vm(9000).expect("template").config["description"].clone()
}

/// Asserts worker-2 (added after the change) is held by a changed template and not cloned.
fn assert_held_by_changed_template(h: &Harness, node: &str) {
    let (status, reason, message) = h.gold_condition("gold");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TemplateConfigChanged"),
        "{message}"
    );
    assert_eq!(h.condition(node, "Held"), "True", "{}", h.status(node));
    assert!(
        h.condition_message(node, "Held")
            .contains("TemplateConfigChanged"),
        "{}",
        h.condition_message(node, "Held")
    );
    let rejected = h.events_of("TemplateRejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].data["reason"], "TemplateConfigChanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_template_description_blocks_the_replacement_and_keeps_the_old_vm() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);
    let verified_digest = h.gold_status("gold")["verified"]["configDigest"].clone();

    // The attestation line is kept: only a note is added. The signature still verifies,
    // but the config is no longer the one that was verified.
    let description = format!("{}\nnote: patched by hand", template_description(&h));
    edit_template(&h, ConfigUpdate::new().description(description)).await;
    h.taint("worker-1", Severity::Warning);
    let clones_before = h.admin.request_count(CLONE);
    h.converge().await;
    h.converge().await;

    assert_eq!(h.admin.request_count(CLONE), clones_before, "no clone");
    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);
    assert_eq!(
        h.admin.vm(4120).expect("old VM").status,
        "running",
        "a StopFirst replacement that cannot clone does not stop the old VM"
    );
    assert_held_by_changed_template(&h, "worker-1");
    let gold = h.gold_status("gold");
    assert_eq!(
        gold["verified"]["configDigest"], verified_digest,
        "the verified digest is not overwritten by the changed one"
    );
    assert_eq!(
        gold["template"]["configDigest"],
        h.admin.vm(9000).expect("template").digest.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_whose_cores_changed_is_not_cloned_for_a_new_node() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    edit_template(&h, ConfigUpdate::new().cores(8)).await;

    apply(
        h.store.as_ref(),
        &format!(
            "{GOLD}{}",
            node("worker-2", "worker", 4130, "SurgeFirst", 0)
        ),
    );
    h.converge().await;

    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);
    assert_held_by_changed_template(&h, "worker-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_changed_while_the_operator_was_down_is_refused_after_restart() {
    let mut h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;

    // A new controller with an empty memory: only the GoldImage status remembers.
    h.restart();
    let description = format!("{}\nnote: patched by hand", template_description(&h));
    edit_template(&h, ConfigUpdate::new().description(description)).await;
    apply(
        h.store.as_ref(),
        &format!(
            "{GOLD}{}",
            node("worker-2", "worker", 4130, "SurgeFirst", 0)
        ),
    );
    h.converge().await;

    assert_eq!(h.owned_vms(), vec![(4120, "worker-1".to_owned())]);
    assert_held_by_changed_template(&h, "worker-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_template_is_not_read_again_after_restart_until_a_clone_is_wanted() {
    let mut h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    h.restart();
    let first = h.ctl.run_pass().await.expect("pass");
    h.ctl.settle().await;
    assert_eq!(
        first.template_reads, 1,
        "a new controller checks each template once"
    );
    let steady = h.ctl.run_pass().await.expect("pass");
    h.ctl.settle().await;
    assert_eq!(steady.template_reads, 0, "nothing changed, no clone wanted");
    assert_eq!(
        h.events_of("TemplateVerified").len(),
        1,
        "no new event after restart"
    );

    h.taint("worker-1", Severity::Warning);
    let replace = h.ctl.run_pass().await.expect("pass");
    h.ctl.settle().await;
    assert_eq!(
        replace.template_reads, 1,
        "a clone is planned only after a fresh check"
    );
    assert!(replace.started > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_template_is_trusted_again_after_the_gold_image_spec_changes() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    edit_template(&h, ConfigUpdate::new().cores(4)).await;
    apply(
        h.store.as_ref(),
        &format!(
            "{GOLD}{}",
            node("worker-2", "worker", 4130, "SurgeFirst", 0)
        ),
    );
    h.converge().await;
    assert_held_by_changed_template(&h, "worker-2");

    // A person looked at the template and accepts it: a new generation of the GoldImage
    // (here a second trusted key) starts a fresh verification.
    let rotated = GOLD.replace(
        "trustedKeys: [",
        "trustedKeys: [\"ed25519:66be7e332c7a453332bd9d0a7f7db055f5c5ef1a06ada66d98b39fb6810c473a\", ",
    );
    assert_ne!(rotated, GOLD);
    apply(h.store.as_ref(), &rotated);
    h.converge().await;

    assert_eq!(
        h.owned_vms(),
        vec![(4120, "worker-1".to_owned()), (4130, "worker-2".to_owned())]
    );
    let (status, reason, _) = h.gold_condition("gold");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Verified"));
    let gold = h.gold_status("gold");
    assert_eq!(gold["verified"]["generation"], 2);
    assert_eq!(
        gold["verified"]["configDigest"],
        h.admin.vm(9000).expect("template").digest.as_str()
    );
    assert_eq!(h.events_of("TemplateVerified").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_template_is_trusted_again_after_the_gold_image_is_re_created() {
    let h = Harness::new(&format!(
        "{GOLD}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21)
    ))
    .await;
    h.converge().await;
    edit_template(&h, ConfigUpdate::new().cores(4)).await;
    apply(
        h.store.as_ref(),
        &format!(
            "{GOLD}{}",
            node("worker-2", "worker", 4130, "SurgeFirst", 0)
        ),
    );
    h.converge().await;
    assert_held_by_changed_template(&h, "worker-2");

    // `reborn delete goldimage gold` + `reborn apply`: a new uid, generation 1 again.
    h.store
        .delete(&ResourceKey::new("GoldImage", "gold"), Expect::Any)
        .expect("deleted");
    apply(h.store.as_ref(), GOLD);
    h.converge().await;

    assert_eq!(
        h.owned_vms(),
        vec![(4120, "worker-1".to_owned()), (4130, "worker-2".to_owned())]
    );
    assert_eq!(h.gold_condition("gold").1, "Verified");
    assert_eq!(h.gold_status("gold")["verified"]["generation"], 1);
}
