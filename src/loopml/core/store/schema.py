"""The metadata schema: every table LoopML keeps, as SQLAlchemy 2 models.

Times are integer milliseconds since the epoch (the MLflow wire format), ids of runs are 32
lowercase hex characters, and every row that points at stored bytes holds a `blake3:` digest.
Changing this module means adding an Alembic revision in `migrations/versions/`.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose metadata names constraints the same on every database."""

    metadata = MetaData(naming_convention=NAMING)


class Experiment(Base):
    """A named group of runs."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(500), unique=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Run(Base):
    """One execution: a training script, a pipeline, a pipeline step."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(String(250), default="")
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="active")
    # Count of metric journals ever opened for this run; each writer numbers its records
    # from (writer << 32), which keeps journal replays idempotent across processes.
    journal_writers: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_runs_experiment_start", "experiment_id", "start_time"),
        Index("ix_runs_parent", "parent_id"),
    )


class Param(Base):
    """A write-once run setting."""

    __tablename__ = "params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    # Search filters (`params.depth = '5'`) start from the key. Not (key, value): PostgreSQL
    # refuses B-tree entries over ~2.7 kB, and a param value may be longer.
    __table_args__ = (Index("ix_params_key", "key"),)


class Tag(Base):
    """A mutable run label."""

    __tablename__ = "tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_tags_key", "key"),)


class Metric(Base):
    """One point of a metric's history; (run_id, seq) makes journal replays idempotent."""

    __tablename__ = "metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(250))
    # SQLite stores NaN as NULL, so NaN travels as is_nan with value 0 (as MLflow does).
    value: Mapped[float] = mapped_column(Float)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)


class LatestMetric(Base):
    """The point with the greatest (step, timestamp) per run and key, for search and tables."""

    __tablename__ = "latest_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_latest_metrics_key_value", "key", "value"),)


class Artifact(Base):
    """A file a run logged, by its path inside the run and the digest of its bytes."""

    __tablename__ = "artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    digest: Mapped[str] = mapped_column(String(71))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Dataset(Base):
    """A named, versioned collection of files."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class DatasetVersion(Base):
    """An immutable version of a dataset: the digest of its manifest blob and a summary."""

    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # The manifest lists (path, digest, size, mode) of every file; it is a blob itself.
    manifest_digest: Mapped[str] = mapped_column(String(71))
    # Column profiles of the CSV and Parquet files, a JSON blob; None when there are none.
    profile_digest: Mapped[str | None] = mapped_column(String(71))
    kind: Mapped[str] = mapped_column(String(8))  # "file" or "folder"
    source: Mapped[str] = mapped_column(String(1000))  # the path it was added from
    num_files: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("dataset_id", "version"),)


class DatasetTag(Base):
    """A movable name for one version of a dataset (`churn@prod`)."""

    __tablename__ = "dataset_tags"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RunInput(Base):
    """A dataset version a run read: the lineage link from runs back to data."""

    __tablename__ = "run_inputs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    context: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_run_inputs_version", "version_id"),)


class PipelineStep(Base):
    """One step of a pipeline run (its own nested run): how it ran and its cache key."""

    __tablename__ = "pipeline_steps"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(250))  # its name in the graph: train, train_2
    function: Mapped[str] = mapped_column(String(500))  # module:qualname
    cache_key: Mapped[str | None] = mapped_column(String(64))
    code_digest: Mapped[str | None] = mapped_column(String(71))  # its sources, a JSON blob
    status: Mapped[str] = mapped_column(String(16))  # RUNNING COMPLETED CACHED FAILED
    cached_from: Mapped[str | None] = mapped_column(String(32))  # the run whose outputs it reused
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_pipeline_steps_pipeline", "pipeline_run_id"),
        Index("ix_pipeline_steps_cache_key", "cache_key", "status"),
    )


class StepValue(Base):
    """An input or output of a step run, by digest: the lineage links between steps."""

    __tablename__ = "step_values"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    direction: Mapped[str] = mapped_column(String(3), primary_key=True)  # "in" or "out"
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    digest: Mapped[str | None] = mapped_column(String(71))  # None: an output that was None
    materializer: Mapped[str] = mapped_column(String(100))  # or "dataset" for a dataset input
    type_name: Mapped[str] = mapped_column(String(250))
    size: Mapped[int] = mapped_column(BigInteger)
    # For an input: the step run that produced it (None for a dataset); for an output: None.
    source_run_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_step_values_digest", "digest"),)


class RegisteredModel(Base):
    """A named model in the registry (`churn-model`); its versions are model packages."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ModelVersion(Base):
    """One version of a registered model: a stored model package and where it came from."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    package_digest: Mapped[str] = mapped_column(String(71))  # the package manifest blob
    flavor: Mapped[str] = mapped_column(String(50))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(1000), default="")  # runs:/RUN/path
    description: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("model_id", "version"),)


class ModelTag(Base):
    """A tag of a registered model, or of one of its versions (version_id 0: the model's)."""

    __tablename__ = "model_tags"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelAlias(Base):
    """A movable name for one version of a model (`champion`)."""

    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AliasEvent(Base):
    """One move of an alias: the audit trail of which version served under it, and why."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(200))
    from_version: Mapped[int | None] = mapped_column(Integer)  # None: the alias was new
    to_version: Mapped[int | None] = mapped_column(Integer)  # None: the alias was removed
    user: Mapped[str] = mapped_column(String(250), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    gate_result: Mapped[str | None] = mapped_column(Text)  # JSON of the gate that allowed it
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_alias_events_model_alias", "model_id", "alias", "id"),)


class Evaluation(Base):
    """A model package scored on one table: the numbers gates read and the report is drawn from."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(1000))  # models:/name/N or runs:/RUN/path
    package_digest: Mapped[str] = mapped_column(String(71))
    # The registered version evaluated, when the model was named by one.
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[int | None] = mapped_column(Integer)
    # The dataset version the rows came from (None: an in-memory frame).
    dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL")
    )
    dataset: Mapped[str] = mapped_column(String(1000), default="")  # churn@v2 or a description
    data_digest: Mapped[str] = mapped_column(String(71))  # of the rows scored
    target: Mapped[str] = mapped_column(String(250))
    task: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[str] = mapped_column(Text)  # JSON {name: value}
    body: Mapped[str] = mapped_column(Text)  # JSON: plots, slices, fairness, importance
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_evaluations_package_data", "package_digest", "data_digest", "target"),
        Index("ix_evaluations_model", "model_name", "model_version"),
    )


class Deployment(Base):
    """A named endpoint and where its traffic goes now; `revision` counts routing changes."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    routing: Mapped[str] = mapped_column(Text)  # JSON of deploy.routing.Routing
    revision: Mapped[int] = mapped_column(Integer)  # compare-and-set on every routing change
    host: Mapped[str] = mapped_column(String(250))
    port: Mapped[int] = mapped_column(Integer)
    alias: Mapped[str | None] = mapped_column(String(200))  # moved to the version promoted
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class DeploymentEvent(Base):
    """One entry of a deployment's history: a routing change, or an analysis and its numbers."""

    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)  # the routing revision after the event
    kind: Mapped[str] = mapped_column(String(40))
    routing: Mapped[str] = mapped_column(Text)  # JSON, the routing after the event
    details: Mapped[str] = mapped_column(Text)  # JSON: analysis numbers, A/B results
    reason: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_deployment_events_deployment", "deployment_id", "id"),)


class Monitor(Base):
    """What watches a deployment: its reference profile, window, alert rules and notifiers."""

    __tablename__ = "monitors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    deployment: Mapped[str] = mapped_column(String(200))  # by name: history outlives it
    reference: Mapped[str] = mapped_column(String(500))  # the dataset ref the profile came from
    model: Mapped[str] = mapped_column(String(250))  # NAME/N whose outputs are the reference
    window_s: Mapped[int] = mapped_column(Integer)
    settings: Mapped[str] = mapped_column(Text)  # JSON: rules, notifiers, drift options
    profile: Mapped[str] = mapped_column(Text)  # JSON of the fitted drift references
    judged_until: Mapped[int] = mapped_column(BigInteger, default=0)  # alerts judged up to here
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class MonitorWindow(Base):
    """One window's results: metrics alerts read, and the details reports draw."""

    __tablename__ = "monitor_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean)  # False while the window is still open
    metrics: Mapped[str] = mapped_column(Text)  # JSON {name: number or null}
    details: Mapped[str] = mapped_column(Text)  # JSON: per-column drift, distributions, versions
    computed_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("monitor_id", "start_ms"),)


class AlertEvent(Base):
    """A rule of a monitor that started firing or resolved, at one window."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(16))  # firing | resolved
    value: Mapped[float | None] = mapped_column(Float)
    window_start: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_alert_events_monitor", "monitor_id", "id"),)


class Policy(Base):
    """A continuous-training policy: what to run, when, and how its model reaches production."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[str] = mapped_column(Text)  # JSON of the checked policy
    source: Mapped[str] = mapped_column(Text, default="")  # the file it was applied from
    cursors: Mapped[str] = mapped_column(Text)  # JSON: what each trigger has consumed
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Loop(Base):
    """One pass of a policy: trigger, training, registration, gate, approval, rollout."""

    __tablename__ = "loops"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per policy
    active: Mapped[int | None] = mapped_column(Integer, unique=True)  # policy id while active
    status: Mapped[str] = mapped_column(String(24))
    step: Mapped[str] = mapped_column(String(24))  # the next step to do
    trigger: Mapped[str] = mapped_column(Text)  # JSON: what fired, with the numbers
    params: Mapped[str] = mapped_column(Text)  # JSON: the pipeline's params, refs pinned
    run_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(250))  # NAME/N once registered
    details: Mapped[str] = mapped_column(Text)  # JSON: gate verdict, rollout revision
    error: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(250), default="")
    started_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("policy_id", "number"),)


class LoopEvent(Base):
    """One entry of a policy's audit timeline (a trigger, a step, a verdict)."""

    __tablename__ = "loop_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"))
    loop_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text)  # JSON: numbers and links (run, model, dataset)
    user: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_loop_events_policy", "policy_id", "id"),)


class Lease(Base):
    """Who may act for a name (the loop controller) until when; taken over once expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(Integer)  # counts takeovers: a fencing number
    acquired_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


# Core tables, for the statements on hot paths (no ORM unit of work involved).
experiments = cast(Table, Experiment.__table__)
runs = cast(Table, Run.__table__)
params = cast(Table, Param.__table__)
tags = cast(Table, Tag.__table__)
metrics = cast(Table, Metric.__table__)
latest_metrics = cast(Table, LatestMetric.__table__)
artifacts = cast(Table, Artifact.__table__)
datasets = cast(Table, Dataset.__table__)
dataset_versions = cast(Table, DatasetVersion.__table__)
dataset_tags = cast(Table, DatasetTag.__table__)
run_inputs = cast(Table, RunInput.__table__)
pipeline_steps = cast(Table, PipelineStep.__table__)
step_values = cast(Table, StepValue.__table__)
registered_models = cast(Table, RegisteredModel.__table__)
model_versions = cast(Table, ModelVersion.__table__)
model_tags = cast(Table, ModelTag.__table__)
model_aliases = cast(Table, ModelAlias.__table__)
alias_events = cast(Table, AliasEvent.__table__)
evaluations = cast(Table, Evaluation.__table__)
deployments = cast(Table, Deployment.__table__)
deployment_events = cast(Table, DeploymentEvent.__table__)
monitors = cast(Table, Monitor.__table__)
monitor_windows = cast(Table, MonitorWindow.__table__)
alert_events = cast(Table, AlertEvent.__table__)
policies = cast(Table, Policy.__table__)
loops = cast(Table, Loop.__table__)
loop_events = cast(Table, LoopEvent.__table__)
leases = cast(Table, Lease.__table__)
