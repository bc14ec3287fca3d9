//! The ledger: identity, grants, caps and budgets, the user's answers.

use super::*;
use crate::security::egress::PrivateAllowance;

fn settings(allow: &[&str]) -> EgressSettings {
    EgressSettings {
        allow: allow.iter().map(|p| p.parse().unwrap()).collect(),
        allow_private: PrivateAllowance::parse(["origin.test", "10.9.0.0/16"]).unwrap(),
        ask: false,
        ask_timeout: std::time::Duration::from_secs(5),
        budget_bytes: 1000,
        max_connections: 2,
    }
}

fn ask(id: &str, client: &str, via: &str, host: &str, port: u16) -> Ask {
    Ask {
        id: id.into(),
        client: client.into(),
        via: via.into(),
        method: "CONNECT".into(),
        host: host.into(),
        port,
    }
}

fn closed(id: &str, allowed: bool, reason: Option<&str>, up: u64, down: u64) -> Closed {
    Closed {
        id: id.into(),
        session: None,
        host: "h".into(),
        port: 443,
        address: None,
        allowed,
        reason: reason.map(String::from),
        bytes_up: up,
        bytes_down: down,
        duration_ms: 1,
    }
}

fn bound() -> Ledger {
    let mut ledger = Ledger::default();
    ledger.bind(
        "172.30.0.2".parse().unwrap(),
        Owner::Session("calc".into()),
        "172.30.0.3".parse().unwrap(),
        "calc-container",
        vec!["api.github.com".parse().unwrap()],
    );
    ledger.bind(
        "172.31.0.2".parse().unwrap(),
        Owner::Session("other".into()),
        "172.31.0.3".parse().unwrap(),
        "other-container",
        Vec::new(),
    );
    ledger
}

/// `calc`'s connection `id` to api.github.com:443 (its grant), no asking.
fn calc_to_github(ledger: &mut Ledger, settings: &EgressSettings, id: &str) -> Judgement {
    ledger.judge(
        &ask(id, "172.30.0.3", "172.30.0.2", "api.github.com", 443),
        settings,
        |_| false,
    )
}

fn reason(judgement: Judgement) -> String {
    match judgement {
        Judgement::Refuse { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_session_reaches_its_grants_only() {
    let mut ledger = bound();
    let settings = settings(&["*.example.org"]);
    let calc = Owner::Session("calc".into());
    let judgement = ledger.judge(
        &ask("1", "172.30.0.3", "172.30.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    );
    assert!(
        matches!(judgement, Judgement::Allow { ref owner, budget_bytes: 1000, private: false, .. } if *owner == calc)
    );
    // Allowed by the user, not requested for this session: the model can request it.
    let refused = reason(ledger.judge(
        &ask("2", "172.30.0.3", "172.30.0.2", "a.example.org", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("request it with `network`"), "{refused}");
    ledger.take_untold(&calc);
    // The other session holds no grant for api.github.com.
    let refused = reason(ledger.judge(
        &ask("3", "172.31.0.3", "172.31.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("egress.allow"), "{refused}");
    let why = refused.split_once(" is refused: ").unwrap().1;
    assert_eq!(
        ledger.take_untold(&Owner::Session("other".into())),
        vec![format!("api.github.com:443: {why}")]
    );
    assert!(ledger.take_untold(&Owner::Session("other".into())).is_empty());
    // Asking is possible: the user is asked instead.
    let judgement = ledger.judge(
        &ask("4", "172.31.0.3", "172.31.0.2", "api.github.com", 443),
        &settings,
        |_| true,
    );
    assert!(matches!(judgement, Judgement::AskUser { .. }));
}

#[test]
fn identity_is_the_proxy_address_and_the_sandbox_address_together() {
    let mut ledger = bound();
    let settings = settings(&[]);
    // Another address on calc's network (not calc's sandbox).
    let refused = reason(ledger.judge(
        &ask("1", "172.30.0.9", "172.30.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("does not come from the sandbox"), "{refused}");
    // calc's own address, arriving on the other session's network.
    let refused = reason(ledger.judge(
        &ask("2", "172.30.0.3", "172.31.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("does not come from the sandbox"), "{refused}");
    // A network this server does not serve.
    let refused = reason(ledger.judge(
        &ask("3", "172.30.0.3", "172.40.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("not a sandbox network"), "{refused}");
    ledger.release(&Owner::Session("calc".into()));
    let refused = reason(ledger.judge(
        &ask("4", "172.30.0.3", "172.30.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("not a sandbox network"), "{refused}");
}

#[test]
fn the_connection_cap_and_the_byte_budget_are_per_sandbox() {
    let mut ledger = bound();
    let settings = settings(&[]);
    let calc = Owner::Session("calc".into());
    let judge = |ledger: &mut Ledger, id: &str| calc_to_github(ledger, &settings, id);
    assert!(matches!(judge(&mut ledger, "1"), Judgement::Allow { .. }));
    assert!(matches!(judge(&mut ledger, "2"), Judgement::Allow { .. }));
    assert!(reason(judge(&mut ledger, "3")).contains("egress.max_connections"));
    ledger.closed(&closed("3", false, Some("refused"), 0, 0));
    let settled = ledger.closed(&closed("1", true, None, 300, 400));
    assert_eq!(settled.owner, Some(calc.clone()));
    assert!(settled.rule.unwrap().contains("api.github.com"));
    assert!(matches!(
        judge(&mut ledger, "4"),
        Judgement::Allow { budget_bytes: 300, .. }
    ));
    ledger.closed(&closed("2", true, Some("byte budget reached"), 100, 200));
    ledger.closed(&closed("4", true, None, 0, 0));
    assert!(reason(judge(&mut ledger, "5")).contains("byte budget reached"));
    let totals = ledger.totals(&calc);
    assert_eq!(
        totals,
        EgressTotals {
            connections: 3,
            refused: 1,
            bytes_up: 400,
            bytes_down: 600
        }
    );
    let untold = ledger.take_untold(&calc);
    assert!(untold.iter().any(|line| line.contains("max_connections")), "{untold:?}");
    assert!(
        untold.iter().any(|line| line.ends_with("byte budget reached")),
        "{untold:?}"
    );
    // The other session is untouched.
    let other = Owner::Session("other".into());
    assert_eq!(ledger.remaining_budget(&other, &settings), 1000);
}

#[test]
fn address_refusals_reach_the_notes_and_host_entries_allow_private_addresses() {
    let mut ledger = bound();
    let settings = settings(&["origin.test:8443"]);
    let calc = Owner::Session("calc".into());
    ledger.set_grants(&calc, vec!["origin.test:8443".parse().unwrap()]);
    let judgement = ledger.judge(
        &ask("1", "172.30.0.3", "172.30.0.2", "origin.test", 8443),
        &settings,
        |_| false,
    );
    assert!(matches!(judgement, Judgement::Allow { private: true, .. }));
    ledger.closed(&closed("1", false, Some("10.0.0.1 is a private address"), 0, 0));
    assert_eq!(
        ledger.take_untold(&calc),
        vec!["h:443: 10.0.0.1 is a private address".to_string()]
    );
    ledger.set_grants(&calc, Vec::new());
    let refused = reason(ledger.judge(
        &ask("2", "172.30.0.3", "172.30.0.2", "api.github.com", 443),
        &settings,
        |_| false,
    ));
    assert!(refused.contains("is refused"), "{refused}");
}

#[test]
fn the_users_answer_opens_only_a_connection_still_waiting() {
    let mut ledger = bound();
    let settings = settings(&[]);
    let other = Owner::Session("other".into());
    let asked = ask("1", "172.31.0.3", "172.31.0.2", "new.example", 443);
    assert!(matches!(
        ledger.judge(&asked, &settings, |_| true),
        Judgement::AskUser { .. }
    ));
    // For the sandbox: granted from then on, counted as open.
    let answered = ledger.answered(&asked, &other, &Approval::ForSandbox, &settings);
    assert!(
        matches!(answered, Answered::Allow { ref grants, .. } if grants.iter().any(|g| g.to_string() == "new.example:443")),
        "{answered:?}"
    );
    assert!(matches!(
        ledger.judge(
            &ask("2", "172.31.0.3", "172.31.0.2", "new.example", 443),
            &settings,
            |_| true
        ),
        Judgement::Allow { .. }
    ));
    ledger.closed(&closed("1", true, None, 0, 0));
    ledger.closed(&closed("2", true, None, 0, 0));
    // A connection that ended while the user decided opens nothing, and
    // leaves no open count behind.
    let late = ask("3", "172.31.0.3", "172.31.0.2", "late.example", 443);
    assert!(matches!(
        ledger.judge(&late, &settings, |_| true),
        Judgement::AskUser { .. }
    ));
    ledger.closed(&closed(
        "3",
        false,
        Some("the client closed the connection before the decision"),
        0,
        0,
    ));
    let answered = ledger.answered(&late, &other, &Approval::Once, &settings);
    assert!(
        matches!(answered, Answered::Refused(ref why) if why.contains("ended before")),
        "{answered:?}"
    );
    for id in ["4", "5"] {
        assert!(matches!(
            ledger.judge(
                &ask(id, "172.31.0.3", "172.31.0.2", "new.example", 443),
                &settings,
                |_| false
            ),
            Judgement::Allow { .. }
        ));
    }
    ledger.closed(&closed("4", true, None, 0, 0));
    ledger.closed(&closed("5", true, None, 0, 0));
    // A refusal is told once, without repeating the host.
    let declined = ask("6", "172.31.0.3", "172.31.0.2", "no.example", 443);
    ledger.judge(&declined, &settings, |_| true);
    let answered = ledger.answered(
        &declined,
        &other,
        &Approval::Refused("the user declined it".into()),
        &settings,
    );
    assert_eq!(answered, Answered::Refused("the user declined it".into()));
    assert_eq!(
        ledger.take_untold(&other),
        vec!["no.example:443: the user declined it".to_string()]
    );
}

#[test]
fn a_new_sandbox_under_an_old_name_starts_afresh_and_a_lost_proxy_leaves_no_open_counts() {
    let mut ledger = bound();
    let settings = settings(&[]);
    let calc = Owner::Session("calc".into());
    let judge = |ledger: &mut Ledger, id: &str| calc_to_github(ledger, &settings, id);
    assert!(matches!(judge(&mut ledger, "1"), Judgement::Allow { .. }));
    assert!(matches!(judge(&mut ledger, "2"), Judgement::Allow { .. }));
    ledger.closed(&closed("1", true, None, 900, 0));
    // The proxy went away with connection 2 open: nothing stays counted.
    ledger.unbind_all();
    assert_eq!(ledger.unsettled(&calc), 0);
    ledger.bind(
        "172.30.0.2".parse().unwrap(),
        calc.clone(),
        "172.30.0.3".parse().unwrap(),
        "calc-container",
        vec!["api.github.com".parse().unwrap()],
    );
    assert!(matches!(
        judge(&mut ledger, "3"),
        Judgement::Allow { budget_bytes: 100, .. }
    ));
    assert!(matches!(judge(&mut ledger, "4"), Judgement::Allow { .. }));
    // Destroyed and created again under the same name: a new container.
    ledger.bind(
        "172.30.0.2".parse().unwrap(),
        calc.clone(),
        "172.30.0.3".parse().unwrap(),
        "new-container",
        vec!["api.github.com".parse().unwrap()],
    );
    assert_eq!(ledger.totals(&calc), EgressTotals::default());
    assert!(matches!(
        judge(&mut ledger, "5"),
        Judgement::Allow { budget_bytes: 1000, .. }
    ));
}

#[test]
fn always_grants_the_sandbox_and_is_the_rule_audited() {
    let mut ledger = bound();
    let settings = settings(&[]);
    let other = Owner::Session("other".into());
    let asked = ask("1", "172.31.0.3", "172.31.0.2", "origin.test", 8080);
    assert!(matches!(
        ledger.judge(&asked, &settings, |_| true),
        Judgement::AskUser { .. }
    ));
    let answered = ledger.answered(&asked, &other, &Approval::Always, &settings);
    assert!(
        matches!(answered, Answered::Allow { ref grants, private: true, .. } if grants.iter().any(|g| g.to_string() == "origin.test:8080")),
        "{answered:?}"
    );
    let settled = ledger.closed(&closed("1", true, None, 0, 0));
    assert_eq!(settled.rule.as_deref(), Some("the user (always)"));
    assert!(matches!(
        ledger.judge(
            &ask("2", "172.31.0.3", "172.31.0.2", "origin.test", 8080),
            &settings,
            |_| false
        ),
        Judgement::Allow { .. }
    ));
}

fn install_bound(grants: &[&str]) -> Ledger {
    let mut ledger = bound();
    ledger.bind(
        "172.32.0.2".parse().unwrap(),
        Owner::Install("i1".into()),
        "172.32.0.3".parse().unwrap(),
        "install-container",
        grants.iter().map(|p| p.parse().unwrap()).collect(),
    );
    ledger
}

fn install_to(ledger: &mut Ledger, settings: &EgressSettings, id: &str, host: &str, port: u16) -> Judgement {
    // The user could be asked, and the host is in egress.allow: neither
    // matters to an install.
    ledger.judge(&ask(id, "172.32.0.3", "172.32.0.2", host, port), settings, |_| true)
}

#[test]
fn an_install_reaches_its_registries_only_without_asking_and_without_the_budget() {
    let mut settings = settings(&["elsewhere.example", "10.0.0.5"]);
    settings.ask = true;
    settings.max_connections = 10;
    let mut ledger = install_bound(&["registry.example:443", "files.example:443"]);
    let owner = Owner::Install("i1".into());
    assert_eq!(owner.tag(), "install i1");
    assert_eq!(owner.to_string(), "install i1");
    let allowed = install_to(&mut ledger, &settings, "c1", "registry.example", 443);
    assert_eq!(
        allowed,
        Judgement::Allow {
            owner: owner.clone(),
            rule: Rule::Registry("registry.example:443".parse().unwrap()),
            budget_bytes: u64::MAX,
            private: true,
        }
    );
    assert_eq!(
        Rule::Registry("registry.example:443".parse().unwrap()).to_string(),
        "install registry `registry.example:443`"
    );
    // Far beyond egress.budget_mb: a large package is normal.
    ledger.closed(&closed("c1", true, None, 10, 50_000));
    assert!(matches!(
        install_to(&mut ledger, &settings, "c2", "files.example", 443),
        Judgement::Allow { private: true, .. }
    ));
    for (id, host, port) in [
        ("c3", "registry.example", 80),
        ("c4", "elsewhere.example", 443),
        ("c5", "10.0.0.5", 443),
        ("c6", "sub.registry.example", 443),
    ] {
        let judgement = install_to(&mut ledger, &settings, id, host, port);
        let Judgement::Refuse {
            owner: Some(refused),
            reason,
        } = judgement
        else {
            panic!("{host}:{port} was not refused: {judgement:?}");
        };
        assert_eq!(refused, owner);
        assert!(reason.contains("package registries"), "{reason}");
        assert!(reason.contains("registry.example:443, files.example:443"), "{reason}");
    }
    // The refusals reach the install's error output.
    assert_eq!(ledger.take_untold(&owner).len(), 4);
}

#[test]
fn an_install_never_reaches_an_address_nor_anything_before_its_registries_are_found() {
    let settings = settings(&[]);
    // An address among its grants is still not a registry name.
    let mut ledger = install_bound(&["10.0.0.5:443"]);
    assert!(matches!(
        install_to(&mut ledger, &settings, "c1", "10.0.0.5", 443),
        Judgement::Refuse { .. }
    ));
    let mut ledger = install_bound(&[]);
    let Judgement::Refuse { reason, .. } = install_to(&mut ledger, &settings, "c2", "registry.example", 443) else {
        panic!("an install without registries reached one");
    };
    assert!(reason.contains("none found"), "{reason}");
    // Another sandbox's address on the install's proxy address: refused.
    let judgement = ledger.judge(
        &ask("c3", "172.30.0.3", "172.32.0.2", "registry.example", 443),
        &settings,
        |_| false,
    );
    assert!(matches!(judgement, Judgement::Refuse { .. }));
}

#[test]
fn an_install_is_held_to_the_connection_cap() {
    let settings = settings(&[]);
    let mut ledger = install_bound(&["registry.example:443"]);
    for id in ["c1", "c2"] {
        assert!(matches!(
            install_to(&mut ledger, &settings, id, "registry.example", 443),
            Judgement::Allow { .. }
        ));
    }
    let Judgement::Refuse { reason, .. } = install_to(&mut ledger, &settings, "c3", "registry.example", 443) else {
        panic!("the cap did not hold");
    };
    assert!(reason.contains("connections are open"), "{reason}");
}
