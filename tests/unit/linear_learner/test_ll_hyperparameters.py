"""Hyperparameter validation: each rule fails the job with a message naming the culprit."""

import pytest

from offline_aws.linear_learner.hyperparameters import (
    AUTO_NUM_MODELS,
    HyperparameterError,
    parse_hyperparameters,
)


def test_defaults_are_awss():
    hp = parse_hyperparameters({"predictor_type": "regressor"})
    assert hp.mini_batch_size == 1000
    assert hp.epochs == 15
    assert hp.loss == "squared_loss"
    assert hp.optimizer == "adam"
    assert hp.num_models == AUTO_NUM_MODELS == 32
    assert hp.use_bias is True and hp.normalize_data is True and hp.normalize_label is True
    assert hp.learning_rate is None and hp.wd is None and hp.l1 is None and hp.feature_dim is None
    assert hp["early_stopping_patience"] == 3
    assert hp["early_stopping_tolerance"] == 0.001
    assert hp["binary_classifier_model_selection_criteria"] == "accuracy"
    assert hp["accuracy_top_k"] == 3
    assert hp["num_point_for_scaler"] == 10000


def test_auto_losses_and_label_normalisation_per_type():
    assert parse_hyperparameters({"predictor_type": "binary_classifier"}).loss == "logistic"
    assert parse_hyperparameters({"predictor_type": "binary_classifier"}).normalize_label is False
    mc = parse_hyperparameters({"predictor_type": "multiclass_classifier", "num_classes": "4"})
    assert mc.loss == "softmax_loss" and mc.num_classes == 4


def test_values_are_parsed_from_strings():
    hp = parse_hyperparameters({
        "predictor_type": "regressor", "mini_batch_size": "30", "epochs": "5", "learning_rate": "0.1",
        "wd": "0.01", "l1": "0", "feature_dim": "12", "use_bias": "False", "num_models": "4",
        "optimizer": "sgd", "loss": "huber_loss", "normalize_label": "false",
    })
    assert (hp.mini_batch_size, hp.epochs, hp.learning_rate, hp.wd, hp.l1) == (30, 5, 0.1, 0.01, 0.0)
    assert (hp.feature_dim, hp.use_bias, hp.num_models, hp.optimizer) == (12, False, 4, "sgd")
    assert hp.loss == "huber_loss" and hp.normalize_label is False


def test_missing_predictor_type():
    with pytest.raises(HyperparameterError, match="'predictor_type'.*required"):
        parse_hyperparameters({"mini_batch_size": "30"})


def test_unknown_hyperparameter():
    with pytest.raises(HyperparameterError, match="'learning_rat'.*unexpected"):
        parse_hyperparameters({"predictor_type": "regressor", "learning_rat": "0.1"})


def test_platform_hyperparameters_are_accepted():
    parse_hyperparameters({"predictor_type": "regressor", "_tuning_objective_metric": "validation:rmse"})


@pytest.mark.parametrize(("name", "value"), [
    ("predictor_type", "classifier"),
    ("mini_batch_size", "abc"),
    ("mini_batch_size", "0"),
    ("mini_batch_size", "2.5"),
    ("epochs", "-1"),
    ("learning_rate", "0"),
    ("learning_rate", "fast"),
    ("wd", "-0.1"),
    ("l1", "nan"),
    ("feature_dim", "0"),
    ("use_bias", "yes"),
    ("normalize_data", "1"),
    ("num_models", "0"),
    ("optimizer", "adagrad"),
    ("loss", "cross_entropy"),
    ("init_method", "xavier"),
    ("quantile", "1"),
    ("beta_1", "1.0"),
    ("early_stopping_tolerance", "0"),
    ("binary_classifier_model_selection_criteria", "auc"),
    ("positive_example_weight_mult", "-1"),
    ("num_classes", "2"),
])
def test_invalid_values_name_the_hyperparameter_and_value(name, value):
    raw = {"predictor_type": "multiclass_classifier", "num_classes": "3", name: value}
    with pytest.raises(HyperparameterError) as err:
        parse_hyperparameters(raw)
    assert f"'{name}'" in str(err.value)
    assert repr(value) in str(err.value)
    assert str(err.value).startswith("ClientError:")


@pytest.mark.parametrize(("ptype", "loss"), [
    ("regressor", "logistic"),
    ("regressor", "softmax_loss"),
    ("binary_classifier", "squared_loss"),
    ("binary_classifier", "softmax_loss"),
    ("multiclass_classifier", "logistic"),
    ("multiclass_classifier", "hinge_loss"),
])
def test_loss_must_suit_predictor_type(ptype, loss):
    with pytest.raises(HyperparameterError, match=f"'loss'.*'{loss}'.*{ptype}"):
        parse_hyperparameters({"predictor_type": ptype, "num_classes": "3", "loss": loss})


@pytest.mark.parametrize(("ptype", "loss"), [
    ("regressor", "absolute_loss"), ("regressor", "quantile_loss"), ("regressor", "eps_insensitive_squared_loss"),
    ("binary_classifier", "hinge_loss"), ("multiclass_classifier", "softmax_loss"),
])
def test_allowed_losses(ptype, loss):
    assert parse_hyperparameters({"predictor_type": ptype, "num_classes": "3", "loss": loss}).loss == loss


def test_multiclass_requires_num_classes():
    with pytest.raises(HyperparameterError, match="'num_classes'.*required"):
        parse_hyperparameters({"predictor_type": "multiclass_classifier"})


def test_num_classes_is_ignored_unless_multiclass():
    assert parse_hyperparameters({"predictor_type": "regressor", "num_classes": "5"}).num_classes is None


def test_non_string_value_is_rejected():
    with pytest.raises(HyperparameterError, match="'epochs'"):
        parse_hyperparameters({"predictor_type": "regressor", "epochs": 5})
