"""Instance datasets end to end on tiny synthetic touching objects: ``api.run`` plans interior and
boundary classes, validates each fold by its objects, chooses the configuration and the rule by
PQ on the cross-validation; ``api.predict`` writes object ids in each case's geometry and
``api.evaluate`` scores them as objects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autounet import api
from autounet.autoplan.plans import load_plans
from autounet.io.atomic import read_json
from autounet.io.image_io import read_segmentation
from autounet.workspace import PreprocessedCase, RawPaths, dataset_paths

TINY = api.TrainingConfig(epochs=1, iterations_per_epoch=3, val_iterations_per_epoch=1, num_workers=0)


@pytest.mark.parametrize("dims, name, configuration", [(2, "Dataset985_Discs", "2d"),
                                                        (3, "Dataset986_Spheres", "3d_fullres")])
def test_an_instance_run_predicts_objects(tmp_path, dims, name, configuration):
    raw = api.make_instance_dataset(tmp_path / "raw" / name, dims=dims, cases=6, test_cases=2,
                                    shape=(48, 48) if dims == 2 else (16, 32, 32))
    result = api.run(raw, tmp_path, api.RunOptions(schedule=TINY, device="cpu", processes=1,
                                                    configurations=(configuration,)))
    paths = dataset_paths(tmp_path, name)
    plans = load_plans(paths.plans)
    assert plans.task == "instance" and plans.instance_task.object_name == "object"
    assert plans.labels == {"background": 0, "interior": 1, "boundary": 2} and plans.configurations[configuration]

    case = PreprocessedCase(paths.data_folder(plans.configurations[configuration].data_identifier), "case_000")
    assert set(np.unique(np.load(case.seg))) <= {0, 1, 2}  # what the network learns
    reference, _ = read_segmentation(paths.reference("case_000", plans.file_ending), plans.reader)
    raw_ids, _ = read_segmentation(RawPaths(raw).labels("Tr") / f"case_000{plans.file_ending}", plans.reader)
    assert np.array_equal(reference, raw_ids)  # the references keep the object ids

    summary = read_json(paths.trained.fold(configuration, 0).validation_summary)
    assert {"foreground_mean_pq", "foreground_mean_aji", "foreground_mean_dice"} <= set(summary)
    cv = read_json(paths.trained.cross_validation)
    entry = cv["entries"][cv["best"]]
    assert cv["task"] == "instance" and cv["best"] == configuration
    assert {"pq", "aji", "object_f1", "instance_dice", "pq_connected_components", "rules"} <= set(entry)
    assert read_json(paths.trained.postprocessing)["rules"] == entry["rules"]
    assert result["cross_validation"].describe().startswith(f"{configuration}, PQ")
    assert "Cross-validation: objects" in result["report"].read_text()

    out = tmp_path / "pred"
    report = api.predict(RawPaths(raw).images("Ts"), out, dataset=raw, root=tmp_path)
    assert not report.failed and len(report.written) == 2
    for path in report.written:
        objects, geometry = read_segmentation(path, plans.reader)
        truth, truth_geometry = read_segmentation(RawPaths(raw).labels("Ts") / path.name, plans.reader)
        assert objects.shape == truth.shape and geometry.spacing == truth_geometry.spacing
        assert set(np.unique(objects)) == set(range(int(objects.max()) + 1))  # ids 1..N, renumbered
    scores = api.evaluate(RawPaths(raw).labels("Ts"), out)
    assert {"pq", "aji", "object_f1", "instance_dice", "dice"} <= set(scores["foreground_mean"])
    assert json.loads((out / "summary.json").read_text())["objects"] == "instances"
