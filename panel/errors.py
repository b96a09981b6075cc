"""The errors a user can hit; each carries one line naming what to fix."""


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


class BudgetExceeded(PanelError):
    """A run hit its request or token budget; what was answered is stored."""


class OverrideError(PanelError):
    """An editor's override names no stored tool, or gives a verdict or quote the page cannot show."""


class ConfigError(PanelError):
    """panel.toml, a flag or an environment variable holds an unknown key or a value that is not allowed."""


class ProjectNotFound(ConfigError):
    """No panel.toml in the working directory or any parent folder (or where $PANEL_PROJECT points)."""
