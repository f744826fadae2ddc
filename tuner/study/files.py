"""Study name and study file: which file a command's argument names, which study a file holds,
and the settings of a study whose file is not at hand."""

from __future__ import annotations

from pathlib import Path

from tuner.errors import TunerError
from tuner.urls import redact_url


def named_file(name_or_file: str) -> Path | None:
    """The study file a command's argument names: the argument itself when it ends in ``.toml``
    or is a file; None when it is a study name."""
    path = Path(name_or_file)
    return path if name_or_file.endswith(".toml") or path.is_file() else None


def study_name(name_or_file: str) -> str:
    """The study a command's argument names: given directly, or through its study file."""
    path = named_file(name_or_file)
    if path is None:
        return name_or_file
    from tuner.study.config import load_config

    return load_config(path).name


def resolve_config(study, storage_url: str | None = None):
    """The StudyConfig of ``study``: a study file (.toml), or a study name whose file is found as
    ``<name>.toml`` / ``studies/<name>.toml`` or as a ``*.toml`` in ``.`` or ``studies/`` whose
    ``name`` is that name, else the settings stored with the study in ``storage_url`` (every
    study run since they were stored keeps them). The data named there is needed for signature,
    scores and refits."""
    import tomllib

    from tuner.study.config import StudyConfig, config_from_settings, load_config

    if isinstance(study, StudyConfig):
        return study
    text = str(study)
    path = named_file(text)
    if path is not None:
        return load_config(path)
    candidates = [Path(f"{text}.toml"), Path("studies") / f"{text}.toml"]
    for folder in (Path("."), Path("studies")):
        if folder.is_dir():
            candidates.extend(sorted(folder.glob("*.toml")))
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            with candidate.open("rb") as fh:
                if tomllib.load(fh).get("name") == text:
                    return load_config(candidate)
        except (OSError, tomllib.TOMLDecodeError):
            continue
    if storage_url:
        stored = _stored_settings(text, storage_url)
        if stored is not None:
            return config_from_settings(
                stored, f"study {text!r} (settings stored in {redact_url(storage_url)})"
            )
    from tuner.cli.hints import tuner_command

    raise TunerError(
        f"no study file for study {text!r} in ./ or ./studies/, and no settings stored with it; "
        f"pass the study file ({tuner_command()} export path/to/{text}.toml): "
        "export needs its data to check and score the model"
    )


def _stored_settings(name: str, storage_url: str) -> dict | None:
    """The study file settings stored with study ``name`` (None if it has none: a study from
    before they were stored); TunerError if the storage has no such study."""
    from tuner.storage.storages import load_existing_study, open_storage
    from tuner.study.definition import STUDY_FILE_ATTR

    return load_existing_study(name, open_storage(storage_url), storage_url).user_attrs.get(
        STUDY_FILE_ATTR
    )
