//! The embeddable engine: a compiled policy set behind one small type, for services that decide in-process.
//!
//! [`Engine`] wraps an immutable snapshot (`Arc`, cheap to clone and to share between threads); [`Engine::decide`]
//! is the same evaluation the sidecar runs for `Authorize`. [`Request::builder`] builds requests without JSON,
//! through the same validation as every other door; [`Engine::decide_ref`] decides a [`RequestRef`] borrowed from the
//! caller's own data, with the same checks and no copy. [`ReloadingEngine`] watches a directory and swaps new sets in
//! with the sidecar's own reload code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::moment::Moment;

use crate::diag::Diagnostic;
use crate::error::Error;
use crate::eval::{evaluate, evaluate_ref, Decision, EvalOptions};
use crate::load::{load_dir, SourceSet};
use crate::request::Request;
use crate::request_ref::RequestRef;
use crate::snapshot::Snapshot;

/// A compiled policy set, ready to decide.
///
/// ```
/// use arbiter::{Engine, Request};
///
/// let engine = Engine::from_sources([(
///     "keys.yaml",
///     r#"
/// kind: Policy
/// id: owners
/// effect: allow
/// actions: ["*"]
/// resources: ["kylo:kylo:vault:keys:*"]
/// conditions:
///   - {path: resource.owner, op: equals, values: ["${principal.id}"]}
/// ---
/// kind: PolicyAttachment
/// id: owners-all
/// policy: owners
/// principal_selector: {}
/// "#,
/// )])?;
///
/// let request = Request::builder("bob")
///     .action("EncryptWithKey")
///     .resource("kylo:kylo:vault:keys:k1")
///     .owner("bob")
///     .build()?;
/// let decision = engine.decide(&request);
/// assert!(decision.allowed);
/// assert_eq!(decision.policies, ["owners".into()]);
///
/// let other = Request::builder("eve").action("EncryptWithKey").resource("kylo:kylo:vault:keys:k1").owner("bob").build()?;
/// assert!(!engine.decide(&other).allowed);
/// # Ok::<(), arbiter::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    snapshot: Arc<Snapshot>,
    superuser: Option<Arc<str>>,
}

impl Engine {
    /// Loads, validates and compiles every policy file under `dir` (recursively; see the README for the file
    /// rules). Every problem in the set is reported at once, in [`Error::Invalid`].
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Engine, Error> {
        let sources = load_dir(dir.as_ref()).map_err(Error::Invalid)?;
        Engine::build(&sources)
    }

    /// Compiles policy files given as `(name, YAML text)` pairs; the names are used in error positions.
    pub fn from_sources<N, T>(sources: impl IntoIterator<Item = (N, T)>) -> Result<Engine, Error>
    where
        N: Into<PathBuf>,
        T: Into<String>,
    {
        let set = SourceSet::from_files(sources.into_iter().map(|(n, t)| (n.into(), t.into())));
        Engine::build(&set)
    }

    fn build(sources: &SourceSet) -> Result<Engine, Error> {
        let snapshot = crate::compile::build(sources).map_err(Error::Invalid)?;
        Ok(Engine::from_snapshot(Arc::new(snapshot)))
    }

    pub(crate) fn from_snapshot(snapshot: Arc<Snapshot>) -> Engine {
        Engine {
            snapshot,
            superuser: Some(Arc::from(crate::DEFAULT_SUPERUSER)),
        }
    }

    /// The principal id that is always allowed (`admin` by default); `None` switches the rule off.
    pub fn with_superuser(mut self, superuser: Option<&str>) -> Engine {
        self.superuser = superuser.map(Arc::from);
        self
    }

    /// Decides one request. A request without a time is decided at the current instant.
    pub fn decide(&self, request: &Request) -> Decision {
        self.decide_at(request, Moment::now())
    }

    /// Decides one request; `now` (a [`jiff::Timestamp`] or a [`Moment`]) stands for the time of a request
    /// that carries none.
    pub fn decide_at(&self, request: &Request, now: impl Into<Moment>) -> Decision {
        evaluate(&self.snapshot, request, now.into(), &self.options(false))
    }

    /// Decides a request borrowed from the caller's data (see [`RequestRef`]), after the checks every door
    /// applies; an invalid request returns [`Error::Request`] naming the field. A request without a time is
    /// decided at the current instant.
    pub fn decide_ref(&self, request: &RequestRef<'_>) -> Result<Decision, Error> {
        self.decide_ref_at(request, Moment::now())
    }

    /// [`Engine::decide_ref`], with `now` (a [`jiff::Timestamp`] or a [`Moment`]) standing for the time of a
    /// request that carries none.
    pub fn decide_ref_at(
        &self,
        request: &RequestRef<'_>,
        now: impl Into<Moment>,
    ) -> Result<Decision, Error> {
        evaluate_ref(&self.snapshot, request, now.into(), &self.options(false))
            .map_err(Error::Request)
    }

    /// Decides one request and explains it: every candidate policy and every condition's outcome.
    pub fn explain(&self, request: &Request) -> Decision {
        evaluate(&self.snapshot, request, Moment::now(), &self.options(true))
    }

    /// Decides several requests against the same set, with one "now" for those that carry no time.
    pub fn decide_batch(&self, requests: &[Request]) -> Vec<Decision> {
        let now = Moment::now();
        let options = self.options(false);
        requests
            .iter()
            .map(|r| evaluate(&self.snapshot, r, now, &options))
            .collect()
    }

    /// The query plan: which resources this principal may act on, as a filter a database can run (see
    /// [`crate::Plan`]). Exact: a resource passes exactly when [`Engine::decide`] would allow every action.
    ///
    /// ```
    /// use arbiter::{Engine, PlanKind, PlanRequest, Request};
    ///
    /// let engine = Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))?;
    /// let carol = Request::builder("carol").group("hr").action("EncryptWithKey").build()?;
    /// let plan = engine.plan(&PlanRequest::new(carol, ["EncryptWithKey"]));
    /// assert_eq!(plan.kind, PlanKind::Conditional);
    /// let sql = plan.to_sql(&arbiter::SqlMapping::default())?;
    /// assert!(sql.where_clause.contains("GLOB"));
    /// let key = Request::builder("carol").action("EncryptWithKey").resource("kylo:kylo:vault:keys:k1")
    ///     .owner("bob")
    ///     .resource_attribute("permissions", serde_json::json!({"EncryptWithKey": ["hr"]}))
    ///     .build()?;
    /// assert!(plan.allows(&key.resource));
    /// # Ok::<(), arbiter::Error>(())
    /// ```
    pub fn plan(&self, request: &crate::plan::PlanRequest) -> crate::plan::Plan {
        crate::plan::plan(
            &self.snapshot,
            request,
            Moment::now(),
            self.superuser.as_deref(),
        )
    }

    fn options(&self, explain: bool) -> EvalOptions<'_> {
        EvalOptions {
            superuser: self.superuser.as_deref(),
            explain,
        }
    }

    /// The content hash of the compiled set.
    pub fn revision(&self) -> &str {
        &self.snapshot.revision
    }

    /// How many policies the set holds.
    pub fn policy_count(&self) -> usize {
        self.snapshot.policy_count()
    }

    /// The set's warnings (they never make it invalid).
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.snapshot.warnings.iter()
    }

    pub(crate) fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }
}

/// An [`Engine`] that follows a policy directory: the sidecar's own reload code (watch, debounce, rebuild off
/// the executor, lockout check if asked, swap with `arc-swap`), for services that embed the engine. A bad edit
/// never replaces the set being served. Needs a Tokio runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), arbiter::Error> {
/// let policies = arbiter::ReloadingEngine::watch("policies/").await?;
/// let request = arbiter::Request::builder("alice").action("CreateKey").resource("kylo:kylo:vault:keys:k").build()?;
/// let decision = policies.engine().decide(&request); // the set current at this call
/// # let _ = decision;
/// policies.stop().await;
/// # Ok(()) }
/// ```
#[cfg(feature = "server")]
#[derive(Debug)]
pub struct ReloadingEngine {
    store: Arc<crate::snapshot::SnapshotStore>,
    reloader: Arc<crate::reload::Reloader>,
    stop: crate::shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "server")]
impl ReloadingEngine {
    /// Loads `dir` (every error in [`Error::Invalid`] if the first load fails) and keeps following it.
    pub async fn watch(dir: impl AsRef<Path>) -> Result<ReloadingEngine, Error> {
        use crate::reload::{run, Debounce, Outcome, ReloadRequest, ReloadStatus, Reloader, Watch};
        let dir = dir.as_ref().to_path_buf();
        let store = Arc::new(crate::snapshot::SnapshotStore::new());
        // The watch starts before the first load so that no change made meanwhile is missed.
        let watch = Watch::start(&dir, true);
        let reloader = Arc::new(Reloader::new(
            dir,
            store.clone(),
            Arc::new(ReloadStatus::default()),
            crate::metrics::Metrics::noop(),
            None,
        ));
        if let Outcome::Failed(diagnostics) = reloader.reload(true).await {
            return Err(Error::Invalid(diagnostics));
        }
        let (_requests, forced) = ReloadRequest::channel();
        let stop = crate::shutdown::Trigger::new();
        let task = tokio::spawn(run(
            reloader.clone(),
            watch,
            Debounce {
                quiet: std::time::Duration::from_millis(200),
            },
            forced,
            None,
            stop.clone(),
        ));
        Ok(ReloadingEngine {
            store,
            reloader,
            stop,
            task,
        })
    }

    /// The set being served now (one lock-free load); keep it for a batch of decisions that must agree.
    pub fn engine(&self) -> Engine {
        // The first load succeeded before `watch` returned, and a snapshot is only ever replaced.
        let snapshot = self
            .store
            .load()
            .expect("a snapshot is published before watch() returns");
        Engine::from_snapshot(snapshot)
    }

    /// Re-reads the directory now; `Err` with every error when the files are invalid (the last good set stays).
    pub async fn reload(&self) -> Result<(), Error> {
        match self.reloader.reload(true).await {
            crate::reload::Outcome::Failed(diagnostics) => Err(Error::Invalid(diagnostics)),
            _ => Ok(()),
        }
    }

    /// Stops following the directory.
    pub async fn stop(self) {
        self.stop.pull();
        let _ = self.task.await;
    }
}

/// The lockout simulator: checks a proposed set (`(name, YAML text)` pairs) against the current one, as
/// `arbiter simulate` does. The report holds every error of the proposed set, every lockout, erosion and
/// inconclusive finding, and [`crate::Report::exit_code`] (0 safe, 1 a finding, 2 invalid).
///
/// ```
/// use std::time::Duration;
///
/// let current = arbiter::Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))?;
/// let mut proposed: Vec<(std::path::PathBuf, String)> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
///     .unwrap()
///     .map(|e| e.unwrap().path())
///     .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
///     .map(|p| { let text = std::fs::read_to_string(&p).unwrap(); (p, text) })
///     .collect();
/// // The change under review: deny every admin action.
/// proposed.push(("freeze.yaml".into(), "kind: Policy\nid: freeze\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: freeze\npolicy: freeze\nprincipal_selector: {groups: [admin]}\n".into()));
/// let options = arbiter::SimulateOptions {
///     as_of: "2026-11-23T12:00:00Z".parse().unwrap(),
///     budget: Duration::from_secs(10),
///     superuser: Some("admin".into()),
/// };
/// let report = arbiter::simulate(Some(&current), proposed, &options);
/// assert_eq!(report.exit_code(), 1);
/// assert_eq!(report.summary.lockouts, 1);
/// assert_eq!(report.lockouts[0].blocking, ["freeze"]);
/// # Ok::<(), arbiter::Error>(())
/// ```
pub fn simulate<N, T>(
    current: Option<&Engine>,
    proposed: impl IntoIterator<Item = (N, T)>,
    options: &crate::simulate::LockoutOptions,
) -> crate::simulate::report::SimulationReport
where
    N: Into<PathBuf>,
    T: Into<String>,
{
    let sources = SourceSet::from_files(proposed.into_iter().map(|(n, t)| (n.into(), t.into())));
    crate::simulate::report::simulate(current.map(|e| &**e.snapshot()), &sources, None, options)
}
