//! Session snapshots (issue #18): snapshot, restore and fork of a python
//! session holding a 50 MiB workspace and 20 small cells, and how long the
//! replay inside restore takes against the cells' own run time.

use crate::harness::{BoxError, Case, Client, Sessions, call, execute, median, ms, unique};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The workspace's size.
pub const WORKSPACE_MIB: usize = 50;
/// Small cells run after the one that writes the workspace.
pub const SMALL_CELLS: usize = 20;

/// `sandbox_session` with `arguments`; returns the answer and how long it took.
async fn timed(client: &Client, arguments: Value) -> Result<(Value, Duration), BoxError> {
    let started = Instant::now();
    let answer = call(client, "sandbox_session", arguments).await?;
    Ok((answer, started.elapsed()))
}

pub async fn snapshot_cases(client: &Client, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut sessions = Sessions::new(client);
    let session = unique("snapshots");
    let result = async {
        sessions.create_plain(&session, "python").await?;
        // The cells' own run time, as the runner measured each.
        let mut cells_ms = 0;
        let big = format!(
            "import os\nwith open('big.bin', 'wb') as f:\n    f.write(os.urandom({WORKSPACE_MIB} * 1024 * 1024))"
        );
        let mut cells = vec![big];
        cells.extend((0..SMALL_CELLS).map(|cell| format!("import math\nv{cell} = [math.sqrt(i) for i in range(1000)]")));
        for code in &cells {
            let ran = execute(client, json!({"language": "python", "code": code, "session": session})).await?;
            cells_ms += ran["duration_ms"].as_u64().unwrap_or(0);
        }
        let (mut snapshots, mut restores, mut replays, mut forks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..=runs {
            let name = format!("run-{run}");
            let (_, took) = timed(client, json!({"action": "snapshot", "name": session, "snapshot": name})).await?;
            let (restored, restore_took) =
                timed(client, json!({"action": "restore", "name": session, "snapshot": name})).await?;
            let replayed = &restored["replay"];
            if replayed["replayed"].as_u64() != Some(cells.len() as u64) || replayed.get("failed").is_some() {
                return Err(format!("the restore did not replay every cell: {restored}").into());
            }
            let replay = Duration::from_millis(replayed["duration_ms"].as_u64().unwrap_or(0));
            let fork = format!("{session}-fork-{run}");
            sessions.adopt(&fork);
            let (forked, fork_took) = timed(
                client,
                json!({"action": "fork", "name": session, "snapshot": name, "new_name": fork}),
            )
            .await?;
            if forked["replay"]["replayed"].as_u64() != Some(cells.len() as u64) {
                return Err(format!("the fork did not replay every cell: {forked}").into());
            }
            sessions.destroy(&fork).await?;
            call(
                client,
                "sandbox_session",
                json!({"action": "delete_snapshot", "name": session, "snapshot": name}),
            )
            .await?;
            if run > 0 {
                snapshots.push(took);
                restores.push(restore_took);
                replays.push(replay);
                forks.push(fork_took);
            }
        }
        let own = Duration::from_millis(cells_ms);
        let overhead = (median(&replays).as_secs_f64() / own.as_secs_f64().max(1e-3) - 1.0) * 100.0;
        let count = cells.len();
        Ok::<_, BoxError>(vec![
            Case::new(
                format!("snapshot of a python session ({WORKSPACE_MIB} MiB workspace, {count} cells)"),
                snapshots,
            ),
            Case::new("restore of that snapshot, replay included", restores),
            Case::new(
                format!(
                    "replay of its {count} cells inside the restore (the cells' own run time {} ms; replay overhead {overhead:.0}%)",
                    ms(own)
                ),
                replays,
            ),
            Case::new("fork of that snapshot into a new session, replay included", forks),
        ])
    }
    .await;
    sessions.close().await;
    result
}
