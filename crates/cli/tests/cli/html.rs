//! `fugue report --html`: a real demo run, rendered to HTML, then opened in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{fugue, temp};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs the demo in `dir/demo` and writes its HTML report to `dir/report.html`.
fn demo_report(dir: &Path) -> (PathBuf, String) {
    let repo = dir.join("demo");
    let out = fugue(dir, &["demo", "--dir", repo.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 0, "demo failed:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let html = dir.join("report.html");
    let out = fugue(dir, &["--repo", repo.to_str().expect("utf-8"), "report", "--html", html.to_str().expect("utf-8")]);
    assert_eq!(out.code, 0, "report --html failed:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("report.html"), "the command names the file it wrote: {}", out.stdout);
    let text = std::fs::read_to_string(&html).expect("the report was written");
    (html, text)
}

/// The slots the journal says the attempts ran in.
fn slots(repo: &Path) -> Vec<String> {
    let journal = std::fs::read_to_string(repo.join(".claude/fugue/journal.ndjson")).expect("journal");
    let mut slots: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "attempt_started")
        .filter_map(|v| v["slot"].as_str().map(str::to_owned))
        .collect();
    slots.sort();
    slots.dedup();
    slots
}

const TASKS: [&str; 9] = ["contracts", "test-plan", "greeting", "farewell", "counter", "parser", "wiring", "docs", "changelog"];

#[test]
fn report_html_is_self_contained_and_shows_every_task() {
    let dir = temp();
    let (_, html) = demo_report(dir.path());
    // Self-contained: nothing is fetched, from anywhere.
    for remote in ["http://", "https://", "src=\"//", "@import", "url(http"] {
        assert!(!html.contains(remote), "the page references `{remote}`");
    }
    assert_eq!(html.matches("<link").count(), 0, "no external stylesheets");
    // One timeline, a lane per pool slot, a bar per task, the critical path highlighted.
    assert_eq!(html.matches(r#"<svg id="timeline""#).count(), 1);
    let lanes = html.matches(r#"<g class="lane" data-lane=""#).count();
    let slots = slots(&dir.path().join("demo"));
    assert!(!slots.is_empty(), "the demo runs in a worktree pool");
    assert_eq!(lanes, slots.len(), "one lane per slot {slots:?}");
    for slot in &slots {
        assert!(html.contains(&format!(r#"data-lane="{slot}""#)), "lane {slot}");
    }
    for task in TASKS {
        let bars: Vec<&str> = html.split(r#"<g class="task" data-task=""#).filter(|b| b.starts_with(&format!("{task}\""))).collect();
        assert!(!bars.is_empty(), "a bar for {task}");
        let merged = bars.last().expect("a bar");
        for phase in ["seg agent", "seg qa", "seg merge"] {
            assert!(merged.contains(&format!(r#"class="{phase}""#)), "{task}'s last attempt has a `{phase}` segment: {merged}");
        }
    }
    assert!(html.contains(r#"class="attempt critical""#), "the critical path is highlighted");
    assert!(html.contains(r#"<svg id="concurrency""#));
    // The task table: nine rows, each with a relative link to the task's newest log.
    let table = html.split(r#"<table id="tasks">"#).nth(1).and_then(|t| t.split("</table>").next()).expect("task table");
    let body = table.split("<tbody>").nth(1).expect("tbody");
    assert_eq!(body.matches("<tr").count(), 9, "{body}");
    for task in TASKS {
        let link = body.split(&format!(r#"href="demo/.claude/logs/{task}-"#)).nth(1).and_then(|s| s.split('"').next());
        assert!(link.is_some_and(|l| l.ends_with(".md")), "a relative link to {task}'s log: {body}");
    }
    assert!(html.contains("estimated by the plan"));
}

/// Headless Chromium, or `None` (after saying so loudly) when it is not installed outside CI.
fn chromium() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    let msg = format!(
        "\n!!!!!!!!\n!!! {CHROMIUM} is NOT INSTALLED: the HTML report was NOT checked in a real browser.\n!!! Install it with `apt-get update && apt-get install -y chromium` (Debian) — `.ci/run` does this when run as root.\n!!!!!!!!\n"
    );
    // Straight to the process's stderr: libtest would swallow `eprintln!` of a passing test.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
    assert!(std::env::var_os("CI").is_none(), "{msg}(this fails because CI is set)");
    None
}

/// Runs Chromium headless on `args` with a fresh profile; returns stdout.
fn run_chromium(bin: &str, profile: &Path, args: &[String]) -> String {
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1366,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    // Chromium can hang on a broken machine; never let it hang the test suite.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s: {}", std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}): {}", std::fs::read_to_string(&err_path).unwrap_or_default());
    stdout
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let dir = temp();
    let (html_path, _) = demo_report(dir.path());
    let url = format!("file://{}", html_path.display());

    let dom = run_chromium(bin, &dir.path().join("profile-dom"), &["--dump-dom".to_owned(), url.clone()]);
    assert!(dom.contains(r#"<svg id="timeline""#), "the timeline is in the rendered DOM: {dom}");
    for task in TASKS {
        assert!(dom.contains(&format!("<code>{task}</code>")), "{task} is in the rendered table");
    }
    // The page's own layout figures: the timeline is laid out wide, and nothing needs a
    // horizontal scrollbar on a 1366-pixel laptop screen.
    let width: u32 = dom
        .split(r#"data-timeline-width=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("the page measured its timeline (did the inline script run?)");
    assert!((1000..=1366).contains(&width), "timeline width {width}px");
    assert!(dom.contains(r#"data-overflow="no""#), "the page scrolls sideways at 1366 px");

    let png = dir.path().join("report.png");
    run_chromium(bin, &dir.path().join("profile-shot"), &[format!("--screenshot={}", png.display()), url]);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(bytes.len() > 10 * 1024, "a screenshot of a real page, not a blank one: {} bytes", bytes.len());
    let dims = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!((dims(16), dims(20)), (1366, 900), "IHDR size");
    if let Some(keep) = std::env::var_os("FUGUE_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("copy the screenshot");
    }
}
