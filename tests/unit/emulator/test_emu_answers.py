"""The inference containers' shared answer rules: Accept negotiation and JSON / JSON Lines answers."""

from __future__ import annotations

import json

import pytest

from offline_aws.answers import ModelError, choose_accept, json_answer
from offline_aws.linear_learner import serving

TYPES = ("application/json", "application/jsonlines", "text/csv")


@pytest.mark.parametrize(("accept", "expected"), [
    (None, ("application/json", ())), ("  ", ("application/json", ())),
    ("*/*", ("application/json", ())), ("application/*", ("application/json", ())),
    ("application/xml, text/csv", ("text/csv", ())),  # the first one it writes
    ("Application/JSONLines; verbose=true", ("application/jsonlines", ("verbose=true",))),
])
def test_the_first_accepted_type_the_container_writes(accept, expected):
    assert choose_accept(accept, TYPES, default="application/json") == expected


def test_a_wildcard_means_the_containers_own_default():
    assert choose_accept("*/*", TYPES, default="text/csv", wildcards=("*/*",)) == ("text/csv", ())
    with pytest.raises(ModelError):
        choose_accept("application/*", TYPES, default="text/csv", wildcards=("*/*",))


def test_nothing_it_writes_is_406_naming_what_it_writes():
    with pytest.raises(ModelError) as err:
        choose_accept("application/xml", TYPES, default="application/json")
    assert err.value.status == 406
    assert err.value.message == ("Accept type 'application/xml' is not supported by this algorithm; supported "
                                 "accept types are application/json, application/jsonlines, text/csv")
    with pytest.raises(ModelError, match="^Accept type application/xml is not"):
        choose_accept("application/xml", TYPES, default="text/csv", quote=False)


def test_json_answers():
    records = [{"score": 1.5}, {"score": 2.0, "predicted_label": 1}]
    assert json.loads(json_answer(records, "application/json")) == {"predictions": records}
    lines = json_answer(records, "application/jsonlines").decode().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert json_answer(records, "text/csv") is None


def test_every_container_refuses_with_the_one_error_class():
    assert serving.ModelError is ModelError
