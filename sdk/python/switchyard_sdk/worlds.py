"""The three kinds of plugin, and the functions that export one as the component's
world. Subclass one, then name it in the matching export function, assigning the result
to the name componentize-py looks for:

    class MyChannel(Channel):
        name = "my-channel"
        version = "0.1.0"

        def deliver(self, delivery):
            return delivered()

    Outbound = export_channel(MyChannel)       # channel world:   Outbound
    Inbound = export_adapter(MyAdapter)        # adapter world:   Inbound
    Transformer = export_transform(MyTransform)  # transform world: Transformer

A plain function works too: `Outbound = export_channel(deliver, name="my-channel")`.
The plugin object is created once, when the module is imported (at build time, in the
snapshot componentize-py takes), so put expensive setup in `__init__` or at module level.
"""

import traceback

from ._wit import Err, exports_base, types
from .host import ConfigError, error
from .http import FetchError
from .outcome import failed, outcome_from_error
from .rejection import Rejection
from .transform import TransformError


class _Plugin:
    name = None
    """The plugin's name, such as `my-channel`; the host shows it in logs and the admin UI."""
    version = "0.1.0"
    """The plugin's semantic version."""
    description = None
    """One line that says what it does; the class docstring's first line when not set."""


class Channel(_Plugin):
    """A channel: makes one attempt to deliver one notification. Override `deliver`."""

    def deliver(self, delivery):
        """Returns an outcome: delivered(), retry(...), failed(...), or
        outcome_from_response(...). A FetchError raised out of it becomes a retry (timeout,
        connection) or a failure; a ConfigError becomes a failure."""
        raise NotImplementedError


class Adapter(_Plugin):
    """An adapter: validates an inbound request and turns it into drafts. Override
    `handle`."""

    def handle(self, request):
        """Returns a list of drafts (empty to accept a request that carries nothing to
        route) or one draft; raises (or returns) a Rejection to refuse the request."""
        raise NotImplementedError


class Transform(_Plugin):
    """A transform: reshapes, filters or splits a notification on its way to a channel.
    Override `transform`."""

    def transform(self, notification, context):
        """Returns keep(...), drop(...), split(...) or a notification (kept); raises (or
        returns) a TransformError. A ConfigError is a TransformError that is not retried."""
        raise NotImplementedError


def _resolve(plugin, base, method, name, version, description):
    """The object whose `method` the export calls (an instance of a class, an instance as
    given, or a function wrapped) and the plugin-info it reports."""
    if isinstance(plugin, type):
        impl = plugin()
    elif hasattr(plugin, method):
        impl = plugin
    elif callable(plugin):
        impl = base()
        setattr(impl, method, plugin)
    else:
        raise TypeError(f"export a {base.__name__} subclass, an instance of one, or a function, not {plugin!r}")
    name = name or getattr(impl, "name", None)
    if not name:
        raise TypeError("a plugin needs a name: set `name = ...` on the class or pass name=...")
    version = version or getattr(impl, "version", None) or "0.1.0"
    if description is None:
        description = getattr(impl, "description", None)
    if description is None:
        if isinstance(plugin, type) or hasattr(plugin, method):
            doc = type(impl).__doc__ if type(impl) not in (Channel, Adapter, Transform) else ""
        else:
            doc = plugin.__doc__
        doc = (doc or "").strip()
        description = doc.splitlines()[0] if doc else ""
    return impl, types.PluginInfo(str(name), str(version), str(description))


def _report(where):
    """Logs the traceback of the exception being handled, then lets it propagate: the
    host sees a trap, as for a Rust panic, and the author sees why in the host's log."""
    try:
        error("%s raised:\n%s", where, traceback.format_exc())
    except BaseException:
        pass


def export_channel(plugin, name=None, version=None, description=None):
    """The class to assign to `Outbound` in the module componentize-py builds."""
    impl, info = _resolve(plugin, Channel, "deliver", name, version, description)
    deliver = impl.deliver

    class Outbound(exports_base("Outbound")):
        def info(self):
            return info

        def deliver(self, delivery):
            try:
                outcome = deliver(delivery)
            except FetchError as e:
                return outcome_from_error(e)
            except ConfigError as e:
                return failed(str(e))
            except BaseException:
                _report("deliver")
                raise
            if not isinstance(outcome, (types.Outcome_Delivered, types.Outcome_Retry, types.Outcome_Failed)):
                _report_type("deliver", outcome, "an outcome: delivered(), retry(...) or failed(...)")
            return outcome

    return Outbound


def export_adapter(plugin, name=None, version=None, description=None):
    """The class to assign to `Inbound` in the module componentize-py builds."""
    impl, info = _resolve(plugin, Adapter, "handle", name, version, description)
    handle = impl.handle

    class Inbound(exports_base("Inbound")):
        def info(self):
            return info

        def handle(self, request):
            try:
                result = handle(request)
            except Rejection as r:
                raise Err(r.to_wit()) from None
            except BaseException:
                _report("handle")
                raise
            if isinstance(result, Rejection):
                raise Err(result.to_wit())
            if isinstance(result, types.Draft):
                return [result]
            if isinstance(result, (list, tuple)) and all(isinstance(d, types.Draft) for d in result):
                return list(result)
            _report_type("handle", result, "a list of drafts, a draft, or a Rejection")

    return Inbound


def export_transform(plugin, name=None, version=None, description=None):
    """The class to assign to `Transformer` in the module componentize-py builds."""
    impl, info = _resolve(plugin, Transform, "transform", name, version, description)
    transform = impl.transform

    class Transformer(exports_base("Transformer")):
        def info(self):
            return info

        def transform(self, notification, context):
            try:
                result = transform(notification, context)
            except TransformError as e:
                raise Err(e.to_wit()) from None
            except ConfigError as e:
                raise Err(types.TransformError(str(e), False)) from None
            except FetchError as e:
                raise Err(types.TransformError(e.describe(), e.retryable)) from None
            except BaseException:
                _report("transform")
                raise
            if isinstance(result, TransformError):
                raise Err(result.to_wit())
            if isinstance(result, types.Notification):
                return types.Transformed_Keep(result)
            if isinstance(result, (types.Transformed_Keep, types.Transformed_Drop, types.Transformed_Split)):
                return result
            _report_type("transform", result, "keep(...), drop(...), split(...) or a TransformError")

    return Transformer


def _report_type(where, value, wanted):
    message = f"{where} returned {type(value).__name__}, not {wanted}"
    error("%s", message)
    raise TypeError(message)
