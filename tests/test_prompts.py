"""Template rendering, its field errors and sandbox, and history truncation to a token budget."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose_config, tiny_overrides
from promptrec.errors import ConfigError
from promptrec.prompts.template import ITEM_FIELDS, PromptTemplate, render_within_budget
from promptrec.runtime.config import config_dir, validate

CONTEXT = {
    "user": {"id": "7", "age": 30, "gender": "F", "occupation": "writer"},
    "target": {"id": "50", "title": "Star Wars", "year": 1977, "genres": ["Action", "Sci-Fi"]},
    "history": [
        {
            "id": str(i),
            "title": f"Movie {i}",
            "year": 1990 + i,
            "genres": ["Drama"],
            "rating": 1 + i % 5,
        }
        for i in range(8)
    ],
}


def test_question_prompt_renders_profile_history_and_target():
    cfg = OmegaConf.load(f"{config_dir()}/prompt/question.yaml")
    text = PromptTemplate(cfg.name, cfg.templates.preference).render(CONTEXT)
    assert text.startswith(
        "A 30-year-old woman (writer) rated movies out of 5: Movie 0: 1; Movie 1: 2;"
    )
    assert text.endswith("[SEP] Will this user like Star Wars (1977, Action, Sci-Fi)?")
    assert "\n" not in text


@pytest.mark.parametrize(
    ("template", "field"),
    [("{{ user.agee }}", "user.agee"), ("{{ usr }}", "usr"),
     ("{% for h in history %}{{ h.score }}{% endfor %}", "history[i].score")],
)  # fmt: skip
def test_unknown_field_is_a_config_error_naming_it(template, field):
    with pytest.raises(ConfigError) as err:
        PromptTemplate("mine", template).render(CONTEXT)
    assert f"unknown field '{field}'" in str(err.value)
    assert "user.{id, age, gender, occupation}" in str(err.value)


def test_k_counts_the_history_items_the_prompt_shows():
    template = PromptTemplate(
        "mine", "last {{ k }}: {{ history | map(attribute='title') | join(', ') }}"
    )
    assert template.render(CONTEXT) == "last 8: " + ", ".join(f"Movie {i}" for i in range(8))
    text, _, kept = render_within_budget(template, CONTEXT, lambda t: t.split(), max_tokens=8)
    assert kept == 3 and text == "last 3: Movie 5, Movie 6, Movie 7"


def test_item_template_sees_only_the_item():
    cfg = OmegaConf.load(f"{config_dir()}/prompt/question.yaml")
    item = PromptTemplate(cfg.name, cfg.templates.item, "item", ITEM_FIELDS)
    assert item.render({"target": CONTEXT["target"]}) == "Star Wars (1977): Action, Sci-Fi"
    with pytest.raises(ConfigError) as err:
        PromptTemplate("mine", "{{ user.age }}", "item", ITEM_FIELDS).render({"target": {}})
    assert "unknown field 'user'" in str(err.value)
    assert "Available fields: target.{id, title, year, genres}." in str(err.value)


def test_template_syntax_error_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid Jinja2"):
        PromptTemplate("broken", "{% for h in history %}")


@pytest.mark.parametrize(
    "template",
    ["{{ user.__class__.__mro__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
     "{{ cycler.__init__.__globals__.os.environ }}", "{{ history.pop() }}"],
)  # fmt: skip
def test_sandbox_blocks_python_internals(template):
    with pytest.raises(Exception) as err:
        PromptTemplate("evil", template).render(CONTEXT)
    assert (
        isinstance(err.value, ConfigError)
        or "unsafe" in str(err.value)
        or "not safely" in str(err.value)
    )


def test_content_hash_tracks_the_text():
    assert PromptTemplate("a", "x").content_hash == PromptTemplate("b", "x").content_hash
    assert PromptTemplate("a", "x").content_hash != PromptTemplate("a", "y").content_hash


def _words(text):  # one "token" per word: makes budgets easy to reason about
    return text.split()


def test_truncation_drops_oldest_history_first_and_keeps_the_target():
    tpl = PromptTemplate(
        "t", "{% for h in history %}{{ h.title }} {% endfor %}| {{ target.title }}"
    )
    full_text, ids, kept = render_within_budget(tpl, CONTEXT, _words, max_tokens=100)
    assert kept == 8 and len(ids) == 19
    text, ids, kept = render_within_budget(
        tpl, CONTEXT, _words, max_tokens=9
    )  # 2 words per item + 3
    assert kept == 3 and len(ids) == 9
    assert text == "Movie 5 Movie 6 Movie 7 | Star Wars"


def test_truncation_never_cuts_the_target():
    tpl = PromptTemplate(
        "t", "{% for h in history %}{{ h.title }} {% endfor %}| {{ target.title }}"
    )
    with pytest.raises(ConfigError, match="needs 3 tokens with no history.*max_tokens=2"):
        render_within_budget(tpl, CONTEXT, _words, max_tokens=2)


def test_the_readme_prompt_examples_render():
    """The two templates the prompts guide offers users must keep working."""
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "docs" / "prompts.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "conf/prompt/" in b]
    assert len(blocks) == 2
    for block in blocks:
        cfg = yaml.safe_load(block)
        text = PromptTemplate(cfg["name"], cfg["templates"]["preference"]).render(CONTEXT)
        assert "Star Wars" in text and "Movie 7" in text


def test_macros_render_what_their_expansion_renders_and_enter_the_hash():
    spelled = PromptTemplate("x", "{{ user.age }}-year-old {{ 'woman' if user.gender == 'F' else "
                                  "'man' }} ({{ user.occupation }}) {% for h in history %}"
                                  "{{ h.title }}: {{ h.rating }}; {% endfor %}")  # fmt: skip
    macro = PromptTemplate("x", "{{ person(user) }} {{ rated(history) }}")
    assert macro.render(CONTEXT) == spelled.render(CONTEXT) != ""
    assert macro.content_hash != spelled.content_hash  # a macro edit must change the cache key
    assert (
        PromptTemplate("x", "{{ user.age }}").content_hash
        == PromptTemplate("y", "{{ user.age }}").content_hash
    )


def test_a_prompt_without_the_task_fails_at_start_up(tiny_model_dir, data_dir, tmp_path):
    overrides = [
        *tiny_overrides(tiny_model_dir, data_dir, tmp_path),
        "task=rating",
        "~prompt.templates.rating",
    ]
    with pytest.raises(
        ConfigError,
        match="prompt=question has no template for task=rating .*serves: next_item, preference",
    ):
        validate(compose_config("train", overrides))
