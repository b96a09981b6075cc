"""The errors a user can hit; each carries one line naming what to fix, and the CLI prints it as `error: ...`.

The whole tree (raised where named):

* PanelError: the base class; caught by the CLI (exit 2, no traceback unless --debug)
  + CardError: a run file or tool card (cards.py)
  + PersonaError: a persona file or prompt template (personas.py, chair.py, render.py)
  + EndpointError: the model endpoint cannot be started, reached or configured (endpoints.py, served_model.py)
  + SetupError: a step of `panel setup embedded` (embedded_setup.py)
  + ScaffoldError: `panel init` (scaffold.py)
  + StoreError: the database is locked, corrupt, newer, or a query was refused (store/)
  |  + DatabaseBusy: another process held the database past the wait
  + BatchError: a batch cannot be submitted, found, collected or imported (batch/)
  + BudgetExceeded: a run hit its request or token budget (ask.py)
  + OverrideError: an editor's override (overrides.py)
  + AskAgainError: an editor's "ask again" or version pick, or the answer that did not come (ask_again.py)
  + CompareError: `panel compare`'s version references (compare_sides.py)
  + CheckError: `panel check` cannot probe the prompts (consistency.py)
  + LabelError: a gold labels file or label (labels.py)
  + ServeError: `panel serve` or `panel desk` cannot listen, start, or keep its voter secret (web/)
  + MailError: an address, the SMTP server or a digest (mail/)
  + PublishError: a pair cannot be approved or published, or its files cannot be written (editorial.py)
  + ConfigError: panel.toml, a flag or an environment variable (config.py, config_file.py, guards.py)
     + ProjectNotFound: no panel.toml here or above (project.py)
"""


class PanelError(Exception):
    """Base class: the CLI prints str(error) as one line, without a traceback."""


class CardError(PanelError):
    """A run file or tool card is missing, unreadable or has a wrong field."""


class PersonaError(PanelError):
    """A persona file or prompt template is broken or uses an unknown variable."""


class EndpointError(PanelError):
    """The model endpoint could not be started, reached or configured."""


class SetupError(PanelError):
    """A step of `panel setup embedded` failed; the line names the step and the log holding its output."""


class ScaffoldError(PanelError):
    """`panel init` would overwrite a file, or cannot write the project folder."""


class StoreError(PanelError):
    """The database is locked, corrupt, from a newer version, or a query was refused."""


class DatabaseBusy(StoreError):
    """Another process held the database file for longer than the wait allowed."""


class BatchError(PanelError):
    """A batch cannot be submitted, found, collected or imported; the line says what to do."""


class BudgetExceeded(PanelError):
    """A run hit its request or token budget; what was answered is stored."""


class OverrideError(PanelError):
    """An editor's override names no stored tool, or gives a verdict or quote the page cannot show."""


class AskAgainError(PanelError):
    """An ask-again or version pick names no stored persona or version, has an empty note, or got no valid answer."""


class CompareError(PanelError):
    """A version reference is unknown or ambiguous, or there is nothing to compare."""


class CheckError(PanelError):
    """The prompts cannot be probed (e.g. the user message lacks its BEGIN/END delimiters)."""


class LabelError(PanelError):
    """A labels file or a label is malformed or names an unknown persona."""


class ServeError(PanelError):
    """`panel serve` cannot listen on its address, did not start, or cannot read or create its voter secret."""


class MailError(PanelError):
    """An email address is not valid, or the SMTP server cannot be reached, refuses the login, or a digest is empty."""


class PublishError(PanelError):
    """A pair is not approved in its current state, has no valid verdict, or its page cannot be written."""


class ConfigError(PanelError):
    """panel.toml, a flag or an environment variable holds an unknown key or a value that is not allowed."""


class ProjectNotFound(ConfigError):
    """No panel.toml in the working directory or any parent folder (or where $PANEL_PROJECT points)."""
