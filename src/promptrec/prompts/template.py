"""A prompt template is Jinja2 text from config, rendered in a sandbox with strict fields.

The sandbox stops a template from reading files, environment variables or private attributes;
StrictUndefined turns a typo such as ``{{ user.agee }}`` into a config error that names the field
and lists the ones that exist, instead of an empty string the model silently learns from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptrec.errors import ConfigError

# The fields every template may use; docs/prompts.md documents them.
FIELDS = {
    "user": ("id", "age", "gender", "occupation"),
    "target": ("id", "title", "year", "genres"),
    "history": ("id", "title", "year", "genres", "rating"),  # a list, oldest first
}


# A soft-prompt slot: the model replaces each with a trainable vector (models/soft_prompt.py).
SOFT_TOKEN = "[SOFT]"

# How a two-tower model writes an item when a prompt has no ``templates.item`` of its own.
DEFAULT_ITEM_TEMPLATE = "{{ target.title }} ({{ target.year }}): {{ target.genres | join(', ') }}"


class UnknownField(Exception):
    def __init__(self, owner: object, name: str):
        super().__init__(name)
        self.owner, self.name = owner, name


def _raise_unknown_field(self, *args, **kwargs):
    raise UnknownField(self._undefined_obj, self._undefined_name)


class _RaisingUndefined(StrictUndefined):
    """StrictUndefined that reports which object lacked which attribute (to name ``user.agee``)."""

    __slots__ = ()
    _fail_with_undefined_error = _raise_unknown_field


# StrictUndefined binds its dunders (__str__, __iter__, …) to the base failure function at class
# creation, so overriding the method alone is not enough: rebind each of them.
for _name in dir(StrictUndefined):
    if getattr(StrictUndefined, _name, None) is Undefined._fail_with_undefined_error:
        setattr(_RaisingUndefined, _name, _raise_unknown_field)


# An item template describes one candidate item on its own: no user, no history.
ITEM_FIELDS = {"target": FIELDS["target"]}


def _field_list(fields: dict) -> str:
    listed = "; ".join(
        f"{k}{'[i]' if k == 'history' else ''}.{{{', '.join(v)}}}" for k, v in fields.items()
    )
    return listed + ("; k (number of history items shown)" if "history" in fields else "")


# Shared macros (person, movie, rated, …) that every template may call without importing them.
MACROS = (Path(__file__).parent / "macros.j2").read_text()


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=_RaisingUndefined, trim_blocks=True, lstrip_blocks=True
    )
    macros = env.from_string(MACROS).module
    env.globals.update({k: v for k, v in vars(macros).items() if not k.startswith("_")})
    return env


_MACRO_NAMES = set(_environment().globals) - set(ImmutableSandboxedEnvironment().globals)


class PromptTemplate:
    """Compiled template + the identity (name, content hash) logged with every run."""

    def __init__(self, name: str, text: str, task: str = "", fields: dict = FIELDS):
        self.name, self.text, self.fields = name, text, fields
        self.where = f"prompt '{name}'" + (f", template for task '{task}'," if task else "")
        self._template = self._compile()
        self.content_hash = hashlib.sha256(self._source().encode()).hexdigest()[:12]

    def _source(self) -> str:
        """The text that decides the rendering: the template, and the macros if it calls any."""
        calls = meta.find_undeclared_variables(_environment().parse(self.text))
        return MACROS + self.text if calls & _MACRO_NAMES else self.text

    def _compile(self):
        env = _environment()
        try:
            return env.from_string(self.text)
        except TemplateSyntaxError as exc:
            raise ConfigError(
                f"The {self.where} is not valid Jinja2 (line {exc.lineno}: {exc.message}). "
                f"Fix the template text in conf/prompt/{self.name}.yaml."
            ) from exc

    def __getstate__(self) -> dict:  # compiled Jinja2 code does not pickle (ddp_spawn workers)
        return {k: v for k, v in self.__dict__.items() if k != "_template"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._template = self._compile()

    def render(self, context: dict) -> str:
        if "history" in context:  # k: how many history items this prompt shows (after the budget)
            context = {**context, "k": len(context["history"])}
        try:
            return self._template.render(**context).strip()
        except UnknownField as exc:
            owner = next((k for k, v in context.items() if v is exc.owner), None)
            if owner is None and any(h is exc.owner for h in context.get("history", ())):
                owner = "history[i]"
            field = f"{owner}.{exc.name}" if owner else exc.name
            raise ConfigError(
                f"The {self.where} uses unknown field '{field}'. "
                f"Available fields: {_field_list(self.fields)}. Fix the spelling in the template."
            ) from None
        except (TemplateError, TypeError) as exc:  # the sandbox: no internals, files or imports
            raise ConfigError(
                f"The {self.where} tried something templates may not do ({exc}). Templates read "
                f"only the example's fields ({_field_list(self.fields)}) and cannot open files, "
                "import modules or reach Python internals; rewrite it with those fields."
            ) from None


def render_items(item_ids, contexts, text: str = DEFAULT_ITEM_TEMPLATE, name: str = "item"):
    """Each item's text through the item template, in the order given (``contexts``: a
    prompts.context.ContextBuilder): what the two-tower head encodes, and what a catalog head's
    rows and SASRec's text vectors start from."""
    template = PromptTemplate(name, text, "item", ITEM_FIELDS)
    return [template.render({"target": contexts.item(i)}) for i in item_ids]


def render_within_budget(
    template: PromptTemplate,
    context: dict,
    encode: Callable[[str], Sequence[int]],
    max_tokens: int,
) -> tuple[str, Sequence[int], int]:
    """Render with as many of the most recent history items as fit in ``max_tokens`` tokens.

    Older history items go first; the target's text is never cut: if the prompt does not fit even
    with an empty history, that is a config error. Returns (text, token ids, history items kept).
    """
    history = context["history"]

    def attempt(k: int):
        text = template.render({**context, "history": history[len(history) - k :]})
        return text, encode(text)

    text, ids = attempt(len(history))
    if len(ids) <= max_tokens:
        return text, ids, len(history)
    lo, hi, best = 0, len(history) - 1, None  # largest k in [lo, hi] that fits
    while lo <= hi:
        mid = (lo + hi) // 2
        text_mid, ids_mid = attempt(mid)
        if len(ids_mid) <= max_tokens:
            best, lo = (text_mid, ids_mid, mid), mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise ConfigError(
            f"Prompt '{template.name}' needs {len(attempt(0)[1])} tokens with no history at all, more "
            f"than data.max_tokens={max_tokens}, so the target item's text would be cut. Raise "
            "data.max_tokens or shorten the template."
        )
    return best
