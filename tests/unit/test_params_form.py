"""The Trigger form's Params: every field in a section with a title and a rule; defaults that validate."""

from __future__ import annotations

import pytest
from airflow.sdk.definitions.param import ParamsDict
from airflow.serialization.definitions.param import SerializedParam, SerializedParamsDict

from sagemaker_retrain import pipeline
from sagemaker_retrain.params import COLLAPSED_SECTIONS, ESSENTIALS, SECTIONS, build_params

# Airflow 3.3's form opens only its default section; the essentials must be in it.
AIRFLOW_DEFAULT_SECTION = "Run Parameters"


@pytest.fixture
def params():
    return build_params()


def _server_side(params) -> SerializedParamsDict:
    """The params as the API server holds them (what POST /dagRuns validates a run's conf with)."""
    return SerializedParamsDict({k: SerializedParam(v.value, v.description, **v.schema) for k, v in params.items()})


def test_every_param_has_a_section_title_and_description(params):
    for name, param in params.items():
        assert param.schema.get("section") in SECTIONS, name
        assert param.schema.get("title"), name
        description = param.schema.get("description_md")
        assert description and "\n" not in description and len(description) <= 400, name


def test_every_section_has_a_field_and_sections_appear_in_order(params):
    seen = list(dict.fromkeys(p.schema["section"] for p in params.values()))
    assert seen == list(SECTIONS)
    assert ESSENTIALS == AIRFLOW_DEFAULT_SECTION and ESSENTIALS not in COLLAPSED_SECTIONS
    # A section's fields are contiguous: the form lists them under one heading each.
    sections = [p.schema["section"] for p in params.values()]
    assert sections == sorted(sections, key=SECTIONS.index)


def test_essentials_are_data_and_gate(params):
    essentials = [n for n, p in params.items() if p.schema["section"] == ESSENTIALS]
    assert essentials == ["dataset_uri", "target_column", "algorithm", "predictor_type", "num_classes", "gate_metric",
                          "gate_threshold", "mode", "endpoint_name", "require_approval"]


def test_defaults_validate_in_the_sdk_and_on_the_server(params):
    ParamsDict(params).validate()
    _server_side(params).validate()
    pipeline._check_params({n: p.value for n, p in params.items()})


def test_bounded_numbers_state_their_range(params):
    for name, param in params.items():
        schema = param.schema
        if "minimum" in schema and "maximum" in schema and schema["maximum"] < 10_000:
            text = schema["description_md"].replace(",", "")
            assert f"{schema['minimum']}" in text and f"{schema['maximum']}" in text, name


def test_single_type_fields_say_which_predictor_or_strategy(params):
    assert "multiclass_classifier only" in params["num_classes"].schema["description_md"]
    assert "`canary` only" in params["canary_percent"].schema["description_md"]
    assert "`linear` only" in params["linear_step_percent"].schema["description_md"]


def test_api_refusal_names_the_field_and_its_rule_in_words(params):
    server = _server_side(params).deep_merge({"endpoint_name": "not a valid name!"})
    with pytest.raises(Exception) as refused:
        server.validate()
    message = str(refused.value)
    assert message.startswith("Invalid input for param endpoint_name:")
    assert "'title': 'Endpoint name'" in message
    assert "Letters, digits and hyphens" in message


@pytest.mark.parametrize(("change", "words"), [
    ({"predictor_type": "multiclass_classifier", "gate_metric": "test:multiclass_accuracy"},
     ("num_classes", "predictor_type", "multiclass_classifier")),
    ({"predictor_type": "binary_classifier"}, ("gate_metric", "predictor_type", "test:roc_auc_score")),
    ({"validation_fraction": 0.5, "test_fraction": 0.45}, ("validation_fraction", "test_fraction")),
])
def test_cross_field_refusals_name_both_params(params, change, words):
    values = {n: p.value for n, p in params.items()} | change
    with pytest.raises(ValueError) as refused:
        pipeline._check_params(values)
    for word in words:
        assert word in str(refused.value)


def test_deep_copies_keep_schema_and_value_apart(params):
    """Airflow deep-copies the DAG's params into every task at parse time: plain dict schemas, no copy hook."""
    import copy
    import json

    original = ParamsDict(params)
    copied = copy.deepcopy(original)
    name = "epochs"
    assert copied.get_param(name) is not original.get_param(name)
    assert type(original.get_param(name).schema) is dict  # no __deepcopy__ of ours (issue 25)
    assert copied.get_param(name).schema == original.get_param(name).schema
    before = original[name]
    copied[name] = before + 1
    assert original[name] == before and copied[name] == before + 1
    assert json.loads(json.dumps(copied.get_param(name).schema)) == dict(original.get_param(name).schema)


# Values around every kind of rule the form uses: types, null, bounds, lengths, patterns, enums.
PROBES = [None, True, 0, -1, 0.5, 1, 3, 10, 2**31, 1e12, "", "x", "ml.m5.large", "ml m5", "bad_name!",
          "s3://bucket-a/key.csv", "a" * 3000, [], {}]


def test_the_draft_7_dialect_changes_no_decision(params):
    """Each schema names draft 7 (its meta-schema check is cheaper at parse); 2020-12 decides every value alike."""
    from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
    from jsonschema.validators import validator_for

    for name, param in params.items():
        schema = param.schema
        assert validator_for(schema) is Draft7Validator, name
        Draft7Validator.check_schema(schema)
        without = {k: v for k, v in schema.items() if k != "$schema"}
        Draft202012Validator.check_schema(without)
        draft7 = Draft7Validator(schema, format_checker=FormatChecker())
        latest = Draft202012Validator(without, format_checker=FormatChecker())
        for value in [param.value, *PROBES]:
            assert draft7.is_valid(value) == latest.is_valid(value), (name, value)
