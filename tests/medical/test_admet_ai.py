"""ADMET-AI's ensembles (medical/dmpnn.admet_ai_*): the ensemble module, and the real checkpoints out of the
admet-ai wheel through the store (``benchmarks/admet_ai_parity.py`` checks them against admet_ai itself)."""
from __future__ import annotations

import pytest
import torch

from medical import ADMET_AI_ENDPOINTS, ADMET_AI_WHEEL
from medical.molecules.dmpnn import DMPNN, dmpnn
from medical.molecules.ensemble import Ensemble, remap_member
from zoo import wheels
from zoo.errors import InputError

WHEEL = wheels.parse(ADMET_AI_WHEEL.format("regression", 0))


def wheel_available() -> bool:
    return any(path.is_file() for folder in wheels.wheelhouses() for path in folder.glob("admet_ai-2.0.1-*.whl"))


needs_wheel = pytest.mark.skipif(
    not wheel_available(),
    reason="the admet-ai 2.0.1 wheel is in no wheelhouse ($ZOO_WHEELHOUSE, $PIP_FIND_LINKS); .ci/run puts it "
    "there with `python -m pip download --no-deps admet-ai==2.0.1 -d $ZOO_WHEELHOUSE`")


def batch():
    from medical.molecules.chem import parse_smiles
    from medical.molecules.featurize import batch_graphs, mol_graph

    return batch_graphs([mol_graph(parse_smiles(s, "test").mol) for s in ("CCO", "c1ccccc1O")])


def test_an_ensemble_averages_members_in_the_space_it_reports():
    torch.manual_seed(0)
    raw = dmpnn(num_targets=2, hidden=16, ffn_hidden=8, members=3).eval()
    inputs = batch()
    each = torch.stack([member(**inputs) for member in raw.members])
    assert torch.allclose(raw(**inputs), each.mean(0))
    probabilities = Ensemble(list(raw.members), 2, "probabilities").eval()
    assert torch.allclose(probabilities(**inputs), torch.sigmoid(each).mean(0))
    unscaled = Ensemble(list(raw.members), 2, "unscaled").eval()
    for i, unscale in enumerate(unscaled.unscale):
        unscale.mean.fill_(i)
        unscale.scale.fill_(2.0)
    expected = torch.stack([each[i] * 2 + i for i in range(3)]).mean(0)  # each member's own scaler, then the mean
    assert torch.allclose(unscaled(**inputs), expected)
    assert isinstance(dmpnn(num_targets=2), DMPNN)
    with pytest.raises(InputError, match="output must be one of"):
        dmpnn(members=2, output="logits")


def test_remap_keeps_the_network_and_scaler_and_drops_training_state():
    state = {"message_passing.W_i.weight": torch.ones(1), "predictor.ffn.0.0.bias": torch.ones(1),
             "predictor.output_transform.mean": torch.zeros(1), "predictor.criterion.task_weights": torch.ones(1),
             "metrics.0.task_weights": torch.ones(1)}
    assert sorted(remap_member(2, state)) == ["members.2.message_passing.W_i.weight",
                                              "members.2.predictor.ffn.0.0.bias", "unscale.2.mean"]
    with pytest.raises(KeyError, match="not a Chemprop v2 MPNN"):
        remap_member(0, {"predictor.ffn.0.0.bias": torch.ones(1)})


@needs_wheel
def test_the_regression_ensemble_predicts_sane_values_from_the_wheel():
    import zoo

    model = zoo.load("medical/dmpnn.admet_ai_regression")
    assert model.card.labels == ADMET_AI_ENDPOINTS["regression"] and model.card.files
    ethanol, phenol, aspirin = model.predict(["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"])
    # Measured: ethanol logS 1.1 and hydration free energy -5.0 kcal/mol; aspirin's logD(7.4) about -1.
    assert ethanol["Solubility_AqSolDB"] == pytest.approx(1.0, abs=0.5)
    assert ethanol["HydrationFreeEnergy_FreeSolv"] == pytest.approx(-5.0, abs=1.0)
    assert aspirin["Lipophilicity_AstraZeneca"] == pytest.approx(-1.0, abs=1.0)
    assert phenol["Solubility_AqSolDB"] > aspirin["Solubility_AqSolDB"] - 2 and phenol["error"] is None


@needs_wheel
def test_the_classification_ensemble_gives_probabilities_from_the_wheel():
    import zoo

    model = zoo.load("medical/dmpnn.admet_ai_classification")
    ethanol, invalid = model.predict(["CCO", "not a molecule"])
    values = [ethanol[name] for name in ADMET_AI_ENDPOINTS["classification"]]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert ethanol["BBB_Martins"] > 0.8 and ethanol["hERG"] < 0.2  # small, neutral, crosses; no hERG blocker
    assert invalid["error"] and invalid["AMES"] is None
