//! Talking to Slurm: submit, ask after, and cancel a job — through `slurmrestd` or the CLI.
//!
//! The REST backend speaks OpenAPI [`OPENAPI_VERSION`] (what Slurm 22.05's `slurmrestd`
//! serves; later releases keep serving it for a while): `POST job/submit`, `GET job/{id}`,
//! `DELETE job/{id}`. Over a unix socket `slurmrestd`'s local auth identifies the caller by its
//! uid; over http a JWT is sent from `SLURM_JWT` (with `SLURM_USER_NAME`, else `USER`). A job
//! submitted over REST gets this process's environment (minus `SLURM_*`), as `sbatch` exports
//! it by default, so both backends start the job script alike. `slurmrestd` ignores `#SBATCH`
//! lines, so `extra_args` are translated into job fields; the ones with no translation are
//! refused when the executor is built, naming the CLI as the way to use them.
//!
//! The CLI backend runs `sbatch --parsable`, `scontrol show job -o` (which knows finished
//! jobs until `MinJobAge`), then `sacct` (which knows them for as long as accounting keeps
//! them, where there is accounting), and `scancel`.
//!
//! Both report a job as a [`JobInfo`]: its state folded into [`JobState`] and, while it runs,
//! how long it has run (so fugue's timeout counts from the start of the job, not its submit,
//! and survives a restart of the orchestrator).

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::http::{self, Address};

/// The `slurmrestd` OpenAPI version this executor speaks.
pub(crate) const OPENAPI_VERSION: &str = "v0.0.38";

/// How long one CLI command or REST request may take.
const CALL_LIMIT: Duration = Duration::from_secs(60);
/// How long the cancel sent from `Drop` may block.
const DROP_CANCEL_LIMIT: Duration = Duration::from_secs(5);

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting to start (or to start again).
    Pending,
    /// Started and not yet over (suspended and completing jobs included).
    Running,
    /// Over; the Slurm state name (`COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …).
    Ended(String),
}

impl JobState {
    /// Folds a Slurm state name (with any `+FLAG` suffixes or trailing words) into a state.
    pub(crate) fn from_slurm(name: &str) -> Self {
        let base = name.split(['+', ' ']).next().unwrap_or_default().trim().to_ascii_uppercase();
        match base.as_str() {
            "PENDING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => Self::Pending,
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY"
            | "REVOKED" => Self::Ended(base),
            // RUNNING, CONFIGURING, SUSPENDED, STOPPED, SIGNALING, RESIZING, STAGE_OUT,
            // COMPLETING, and anything newer: keep waiting (the status file or a later state
            // ends the wait, the timeout bounds it).
            _ => Self::Running,
        }
    }
}

/// What the scheduler says about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobInfo {
    pub(crate) state: JobState,
    /// How long it has been running, when it runs.
    pub(crate) elapsed: Option<Duration>,
    /// Slurm's reason (`TimeLimit`, `NonZeroExitCode`, …), when it gives one.
    pub(crate) reason: Option<String>,
}

/// One job to submit.
#[derive(Debug, Clone)]
pub(crate) struct Submission<'a> {
    pub(crate) name: &'a str,
    pub(crate) script: &'a str,
    pub(crate) script_path: &'a std::path::Path,
    pub(crate) dir: &'a std::path::Path,
    pub(crate) output: &'a std::path::Path,
    pub(crate) time_limit_minutes: Option<u32>,
}

/// The site's settings every submission carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Site {
    pub(crate) partition: Option<String>,
    pub(crate) account: Option<String>,
    pub(crate) extra_args: Vec<String>,
}

#[derive(Debug)]
pub(crate) enum Backend {
    Rest { address: Address, site: Site, fields: Map<String, Value> },
    Cli { site: Site },
}

impl Backend {
    /// The REST backend; fails when an extra argument has no job-field translation.
    pub(crate) fn rest(address: Address, site: Site) -> Result<Self, String> {
        let fields = rest_fields(&site.extra_args)?;
        Ok(Self::Rest { address, site, fields })
    }

    /// What the backend talks to, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Rest { address, .. } => format!("slurmrestd at {address}"),
            Self::Cli { .. } => "the Slurm CLI (sbatch/scontrol/scancel)".to_owned(),
        }
    }

    /// Submits a job; returns its id.
    pub(crate) async fn submit(&self, job: &Submission<'_>) -> Result<String, String> {
        match self {
            Self::Rest { address, site, fields } => {
                let body = submit_body(job, site, fields);
                let response = call(address, "POST", &format!("/slurm/{OPENAPI_VERSION}/job/submit"), Some(&body)).await?;
                let value = json_body(&response)?;
                if let Some(errors) = rest_errors(&value) {
                    return Err(format!("slurmrestd refused the job: {errors}"));
                }
                match value.get("job_id").and_then(Value::as_u64) {
                    Some(id) if response.status < 300 => Ok(id.to_string()),
                    _ => Err(format!("slurmrestd answered {} without a job id", response.status)),
                }
            }
            Self::Cli { site } => {
                let mut args = vec![
                    "--parsable".to_owned(),
                    format!("--job-name={}", job.name),
                    format!("--output={}", job.output.display()),
                    format!("--error={}", job.output.display()),
                    format!("--chdir={}", job.dir.display()),
                ];
                if let Some(minutes) = job.time_limit_minutes {
                    args.push(format!("--time={minutes}"));
                }
                if let Some(p) = &site.partition {
                    args.push(format!("--partition={p}"));
                }
                if let Some(a) = &site.account {
                    args.push(format!("--account={a}"));
                }
                args.extend(site.extra_args.iter().cloned());
                args.push(job.script_path.display().to_string());
                let out = run_cli("sbatch", &args).await?;
                let id = out.trim().split(';').next().unwrap_or_default().trim();
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("sbatch printed `{}` where a job id was expected", out.trim()));
                }
                Ok(id.to_owned())
            }
        }
    }

    /// The job's state; `None` when the scheduler does not know the job (any more).
    pub(crate) async fn query(&self, id: &str) -> Result<Option<JobInfo>, String> {
        match self {
            Self::Rest { address, .. } => {
                let response = call(address, "GET", &format!("/slurm/{OPENAPI_VERSION}/job/{id}"), None).await?;
                let value = json_body(&response)?;
                if invalid_job(&value) {
                    return Ok(None);
                }
                if let Some(errors) = rest_errors(&value) {
                    return Err(format!("slurmrestd could not report job {id}: {errors}"));
                }
                let Some(job) = value.get("jobs").and_then(Value::as_array).and_then(|jobs| jobs.first()) else {
                    return Ok(None);
                };
                Ok(Some(rest_job_info(job, SystemTime::now())))
            }
            Self::Cli { .. } => match run_cli("scontrol", &["show".to_owned(), "job".to_owned(), "-o".to_owned(), id.to_owned()]).await {
                Ok(out) => Ok(scontrol_job_info(&out)),
                Err(e) if e.contains("Invalid job id") => {
                    // Gone from the controller's memory; accounting may still know how it ended.
                    let args = ["-n", "-X", "-P", "-o", "State", "-j", id].map(str::to_owned);
                    match run_cli("sacct", &args).await {
                        Ok(out) => Ok(out.lines().next().filter(|l| !l.trim().is_empty()).map(|state| JobInfo {
                            state: JobState::from_slurm(state),
                            elapsed: None,
                            reason: None,
                        })),
                        Err(_) => Ok(None),
                    }
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Cancels the job (Slurm sends SIGTERM, then SIGKILL after its `KillWait`).
    pub(crate) async fn cancel(&self, id: &str) -> Result<(), String> {
        match self {
            Self::Rest { address, .. } => {
                let response = call(address, "DELETE", &format!("/slurm/{OPENAPI_VERSION}/job/{id}"), None).await?;
                cancel_result(&response)
            }
            Self::Cli { .. } => run_cli("scancel", &[id.to_owned()]).await.map(drop),
        }
    }

    /// [`cancel`](Self::cancel) without a runtime, bounded: for `Drop`.
    pub(crate) fn cancel_blocking(&self, id: &str) -> Result<(), String> {
        match self {
            Self::Rest { address, .. } => {
                let bytes = http::request(address, "DELETE", &format!("/slurm/{OPENAPI_VERSION}/job/{id}"), &auth_headers(address), None);
                cancel_result(&http::send_blocking(address, &bytes, DROP_CANCEL_LIMIT)?)
            }
            Self::Cli { .. } => {
                let mut child = std::process::Command::new("scancel")
                    .arg(id)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("failed to run scancel: {e}"))?;
                let deadline = std::time::Instant::now() + DROP_CANCEL_LIMIT;
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) if status.success() => return Ok(()),
                        Ok(Some(status)) => return Err(format!("scancel {id} failed ({status})")),
                        Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            return Err(format!("scancel {id} did not finish within {DROP_CANCEL_LIMIT:?}"));
                        }
                    }
                }
            }
        }
    }
}

fn cancel_result(response: &http::Response) -> Result<(), String> {
    if response.status < 300 {
        return Ok(());
    }
    let value = serde_json::from_slice::<Value>(&response.body).unwrap_or(Value::Null);
    // A job that already ended needs no cancelling.
    if invalid_job(&value) || rest_errors(&value).is_some_and(|e| e.contains("already completed")) {
        return Ok(());
    }
    Err(format!("slurmrestd answered {}: {}", response.status, rest_errors(&value).unwrap_or_default()))
}

/// The JWT headers, when a token is in the environment.
fn auth_headers(address: &Address) -> Vec<(String, String)> {
    let _ = address;
    let Ok(token) = std::env::var("SLURM_JWT") else { return Vec::new() };
    let user = ["SLURM_USER_NAME", "USER", "LOGNAME"].iter().find_map(|k| std::env::var(k).ok()).unwrap_or_default();
    vec![("X-SLURM-USER-NAME".to_owned(), user), ("X-SLURM-USER-TOKEN".to_owned(), token)]
}

async fn call(address: &Address, method: &str, path: &str, body: Option<&Value>) -> Result<http::Response, String> {
    let body = body.map(Value::to_string);
    let bytes = http::request(address, method, path, &auth_headers(address), body.as_deref().map(str::as_bytes));
    match tokio::time::timeout(CALL_LIMIT, http::send(address, &bytes)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {CALL_LIMIT:?}")),
    }
}

fn json_body(response: &http::Response) -> Result<Value, String> {
    serde_json::from_slice(&response.body).map_err(|e| {
        let text = String::from_utf8_lossy(&response.body);
        let text: String = text.chars().take(200).collect();
        format!("slurmrestd answered {} with something that is not JSON ({e}): {text}", response.status)
    })
}

/// The `errors` of a response, joined; `None` when there are none.
fn rest_errors(value: &Value) -> Option<String> {
    let errors = value.get("errors")?.as_array()?;
    let texts: Vec<String> = errors
        .iter()
        .map(|e| {
            let error = e.get("error").and_then(Value::as_str).unwrap_or_default();
            let description = e.get("description").and_then(Value::as_str).unwrap_or_default();
            match (error.is_empty(), description.is_empty()) {
                (false, false) => format!("{error} ({description})"),
                (false, true) => error.to_owned(),
                _ => description.to_owned(),
            }
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

/// Slurm's ESLURM_INVALID_JOB_ID.
fn invalid_job(value: &Value) -> bool {
    value.get("errors").and_then(Value::as_array).is_some_and(|errors| {
        errors.iter().any(|e| {
            e.get("error_number").and_then(Value::as_i64) == Some(2017)
                || e.get("error").and_then(Value::as_str).is_some_and(|s| s.contains("Invalid job id"))
        })
    })
}

fn submit_body(job: &Submission<'_>, site: &Site, fields: &Map<String, Value>) -> Value {
    let environment: Map<String, Value> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !k.starts_with("SLURM_") && !k.starts_with("SLURMRESTD_"))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let output = job.output.display().to_string();
    let mut props = json!({
        "name": job.name,
        "current_working_directory": job.dir.display().to_string(),
        "standard_output": output,
        "standard_error": output,
        "environment": environment,
    });
    if let Some(obj) = props.as_object_mut() {
        if let Some(minutes) = job.time_limit_minutes {
            obj.insert("time_limit".to_owned(), json!(minutes));
        }
        if let Some(p) = &site.partition {
            obj.insert("partition".to_owned(), json!(p));
        }
        if let Some(a) = &site.account {
            obj.insert("account".to_owned(), json!(a));
        }
        obj.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    json!({ "script": job.script, "job": props })
}

/// Memory in MB from an sbatch size (`4G`, `512M`, `512`).
fn megabytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = digits.parse().ok()?;
    match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" => Some(n),
        "K" | "KB" => Some(n.div_ceil(1024)),
        "G" | "GB" => n.checked_mul(1024),
        "T" | "TB" => n.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// Translates `sbatch` arguments into v0.0.38 job fields.
pub(crate) fn rest_fields(args: &[String]) -> Result<Map<String, Value>, String> {
    let mut fields = Map::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let flag = match flag {
            "-c" => "--cpus-per-task",
            "-C" => "--constraint",
            "-G" => "--gpus",
            "-q" => "--qos",
            "-n" => "--ntasks",
            "-N" => "--nodes",
            f => f,
        };
        if flag == "--exclusive" {
            fields.insert("exclusive".to_owned(), json!(inline.as_deref().unwrap_or("true")));
            continue;
        }
        if flag == "--requeue" || flag == "--no-requeue" {
            fields.insert("requeue".to_owned(), json!(flag == "--requeue"));
            continue;
        }
        let known = [
            "--cpus-per-task",
            "--mem",
            "--mem-per-cpu",
            "--qos",
            "--constraint",
            "--gres",
            "--gpus",
            "--reservation",
            "--comment",
            "--wckey",
            "--ntasks",
            "--nodes",
            "--nice",
        ];
        if !known.contains(&flag) {
            return Err(format!(
                "sbatch argument `{arg}` has no slurmrestd equivalent here (known: {}, --exclusive, --requeue, --no-requeue): remove `executor.rest` to submit with sbatch, which takes any argument",
                known.join(", ")
            ));
        }
        let value = match inline {
            Some(v) => v,
            None => iter.next().cloned().ok_or_else(|| format!("sbatch argument `{arg}` needs a value"))?,
        };
        let bad = || format!("sbatch argument `{flag}` has a bad value `{value}`");
        let (key, v) = match flag {
            "--cpus-per-task" => ("cpus_per_task", json!(value.parse::<u32>().map_err(|_| bad())?)),
            "--ntasks" => ("tasks", json!(value.parse::<u32>().map_err(|_| bad())?)),
            "--nice" => ("nice", json!(value.parse::<i32>().map_err(|_| bad())?)),
            "--nodes" => {
                let (lo, hi) = value.split_once('-').unwrap_or((&value, &value));
                let lo = lo.parse::<u32>().map_err(|_| bad())?;
                let hi = hi.parse::<u32>().map_err(|_| bad())?;
                ("nodes", json!([lo, hi]))
            }
            "--mem" => ("memory_per_node", json!(megabytes(&value).ok_or_else(bad)?)),
            "--mem-per-cpu" => ("memory_per_cpu", json!(megabytes(&value).ok_or_else(bad)?)),
            "--qos" => ("qos", json!(value)),
            "--constraint" => ("constraints", json!(value)),
            "--gres" => ("gres", json!(value)),
            "--gpus" => ("gpus", json!(value)),
            "--reservation" => ("reservation", json!(value)),
            "--comment" => ("comment", json!(value)),
            _ => ("wckey", json!(value)),
        };
        fields.insert(key.to_owned(), v);
    }
    Ok(fields)
}

fn rest_job_info(job: &Value, now: SystemTime) -> JobInfo {
    let state = JobState::from_slurm(job.get("job_state").and_then(Value::as_str).unwrap_or_default());
    let elapsed = match state {
        JobState::Running => job.get("start_time").and_then(Value::as_u64).filter(|t| *t > 0).map(|start| {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            Duration::from_secs(now.saturating_sub(start))
        }),
        _ => None,
    };
    let reason = job.get("state_reason").and_then(Value::as_str).filter(|r| !r.is_empty() && *r != "None").map(str::to_owned);
    JobInfo { state, elapsed, reason }
}

/// `[days-]hours:minutes:seconds` (or shorter), as Slurm prints run times.
pub(crate) fn parse_run_time(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once('-') {
        Some((d, c)) => (d.parse::<u64>().ok()?, c),
        None => (0, text),
    };
    let mut secs = 0u64;
    for part in clock.split(':') {
        secs = secs.checked_mul(60)?.checked_add(part.parse::<u64>().ok()?)?;
    }
    Some(Duration::from_secs(days * 86_400 + secs))
}

fn scontrol_job_info(line: &str) -> Option<JobInfo> {
    let mut state = None;
    let mut elapsed = None;
    let mut reason = None;
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("JobState=") {
            state = Some(JobState::from_slurm(v));
        } else if let Some(v) = word.strip_prefix("RunTime=") {
            elapsed = parse_run_time(v);
        } else if let Some(v) = word.strip_prefix("Reason=") {
            reason = Some(v.to_owned()).filter(|r| r != "None");
        }
    }
    let state = state?;
    let elapsed = if state == JobState::Running { elapsed } else { None };
    Some(JobInfo { state, elapsed, reason })
}

/// Runs a Slurm command; its stdout, or an error with its stderr.
async fn run_cli(program: &str, args: &[String]) -> Result<String, String> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = match tokio::time::timeout(CALL_LIMIT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "failed to run `{program}`: it is not installed or not on PATH (install Slurm's client commands, or set `executor.rest` to a slurmrestd address)"
            ));
        }
        Ok(Err(e)) => return Err(format!("failed to run `{program}`: {e}")),
        Err(_) => return Err(format!("`{program}` did not finish within {CALL_LIMIT:?}; is slurmctld up?")),
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("`{program} {}` failed ({}): {}", args.join(" "), output.status, stderr.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_fold() {
        assert_eq!(JobState::from_slurm("PENDING"), JobState::Pending);
        assert_eq!(JobState::from_slurm("REQUEUED"), JobState::Pending);
        assert_eq!(JobState::from_slurm("RUNNING"), JobState::Running);
        assert_eq!(JobState::from_slurm("COMPLETING"), JobState::Running);
        assert_eq!(JobState::from_slurm("SUSPENDED"), JobState::Running);
        assert_eq!(JobState::from_slurm("COMPLETED"), JobState::Ended("COMPLETED".to_owned()));
        assert_eq!(JobState::from_slurm("CANCELLED by 0"), JobState::Ended("CANCELLED".to_owned()));
        assert_eq!(JobState::from_slurm("cancelled+"), JobState::Ended("CANCELLED".to_owned()));
        assert_eq!(JobState::from_slurm("TIMEOUT"), JobState::Ended("TIMEOUT".to_owned()));
        assert_eq!(JobState::from_slurm("OUT_OF_MEMORY"), JobState::Ended("OUT_OF_MEMORY".to_owned()));
        assert_eq!(JobState::from_slurm("SOMETHING_NEW"), JobState::Running);
    }

    #[test]
    fn run_times() {
        assert_eq!(parse_run_time("00:00:05"), Some(Duration::from_secs(5)));
        assert_eq!(parse_run_time("01:02:03"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_run_time("2-00:00:01"), Some(Duration::from_secs(2 * 86_400 + 1)));
        assert_eq!(parse_run_time("05:07"), Some(Duration::from_secs(307)));
        assert_eq!(parse_run_time("x"), None);
        assert_eq!(parse_run_time(""), None);
    }

    #[test]
    fn scontrol_lines() {
        let line = "JobId=7 JobName=t1 UserId=root(0) JobState=RUNNING Reason=None Dependency=(null) RunTime=00:01:05 TimeLimit=00:02:00";
        assert_eq!(
            scontrol_job_info(line),
            Some(JobInfo { state: JobState::Running, elapsed: Some(Duration::from_secs(65)), reason: None })
        );
        let line = "JobId=7 JobState=TIMEOUT Reason=TimeLimit RunTime=00:02:00";
        assert_eq!(
            scontrol_job_info(line),
            Some(JobInfo { state: JobState::Ended("TIMEOUT".to_owned()), elapsed: None, reason: Some("TimeLimit".to_owned()) })
        );
        assert_eq!(scontrol_job_info("garbage"), None);
    }

    #[test]
    fn rest_jobs() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let job = json!({"job_state": "RUNNING", "start_time": 990, "state_reason": "None"});
        assert_eq!(rest_job_info(&job, now), JobInfo { state: JobState::Running, elapsed: Some(Duration::from_secs(10)), reason: None });
        let job = json!({"job_state": "FAILED", "start_time": 990, "state_reason": "NonZeroExitCode"});
        assert_eq!(rest_job_info(&job, now).reason.as_deref(), Some("NonZeroExitCode"));
        let gone = json!({"errors": [{"error_number": 2017, "error": "Invalid job id specified"}], "jobs": []});
        assert!(invalid_job(&gone));
        assert_eq!(rest_errors(&gone).as_deref(), Some("Invalid job id specified"));
        assert_eq!(rest_errors(&json!({"errors": []})), None);
    }

    #[test]
    fn extra_args_translate_or_are_refused() {
        let args: Vec<String> =
            ["--mem=4G", "-c", "2", "--qos", "high", "--gres=gpu:1", "--exclusive", "--nodes=1-2"].iter().map(|s| s.to_string()).collect();
        let fields = rest_fields(&args).expect("known");
        assert_eq!(
            Value::Object(fields),
            json!({"memory_per_node": 4096, "cpus_per_task": 2, "qos": "high", "gres": "gpu:1", "exclusive": "true", "nodes": [1, 2]})
        );
        let e = rest_fields(&["--mail-user=x".to_owned()]).expect_err("unknown");
        assert!(e.contains("`--mail-user=x`") && e.contains("remove `executor.rest`"), "{e}");
        assert!(rest_fields(&["--mem=lots".to_owned()]).is_err());
        assert!(rest_fields(&["--qos".to_owned()]).is_err());
        assert_eq!(megabytes("512"), Some(512));
        assert_eq!(megabytes("2048k"), Some(2));
        assert_eq!(megabytes("1k"), Some(1));
    }

    #[test]
    fn submit_bodies_carry_site_and_job() {
        let site = Site { partition: Some("debug".to_owned()), account: Some("lab".to_owned()), extra_args: Vec::new() };
        let job = Submission {
            name: "t1",
            script: "#!/bin/sh\n",
            script_path: std::path::Path::new("/j/x/job.sh"),
            dir: std::path::Path::new("/j/x"),
            output: std::path::Path::new("/j/x/out"),
            time_limit_minutes: Some(3),
        };
        let body = submit_body(&job, &site, &rest_fields(&["--qos=q".to_owned()]).expect("ok"));
        assert_eq!(body["script"], "#!/bin/sh\n");
        let props = &body["job"];
        assert_eq!(
            (&props["name"], &props["time_limit"], &props["partition"], &props["account"], &props["qos"]),
            (&json!("t1"), &json!(3), &json!("debug"), &json!("lab"), &json!("q"))
        );
        assert_eq!((&props["standard_output"], &props["current_working_directory"]), (&json!("/j/x/out"), &json!("/j/x")));
        assert!(props["environment"].as_object().is_some_and(|env| env.keys().all(|k| !k.starts_with("SLURM_"))));
    }
}
