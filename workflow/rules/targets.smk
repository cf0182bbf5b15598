# One target rule per paper artifact: reproduce_table1, reproduce_table2 (= 2a-2e), reproduce_table2a,
# ..., reproduce_unet_table2, reproduce_all; and one per figure (reproduce_maskrcnn_fig3, ...), all of
# which reproduce_all includes. Each asks for its outputs at the configured scale (config: scale).
FIGURE_TARGETS = {f"reproduce_{name}": f"{REPORTS}/{SCALE}/figures/{name}.json" for name in FIGURES}

# A scale defines a subset of the tables (a table's `seeds` keys name its scales): reproduce_all builds
# those; the target of a table not defined at the scale stops with one line saying so.
SCALE_TABLES = table_names(REGISTRY, SCALE)
FIGURE_TARGETS_AT_SCALE = [m for f, m in FIGURE_TARGETS.items()
                           if set(FIGURES[f.removeprefix("reproduce_")].tables or SCALE_TABLES) <= set(SCALE_TABLES)]


for _artifact in ARTIFACTS:
    _missing = [t for t in ARTIFACTS[_artifact] if t not in SCALE_TABLES]
    if _artifact == "all" or not _missing:
        # the artifact's tables plus those whose runs it all trains (cheap; keeps shared runs consistent)
        _tables = assembled_with(_artifact, REGISTRY, SCALE)
        _extra = list(FIGURE_TARGETS_AT_SCALE) if _artifact == "all" else []
        _extra += [f"{RESULTS}/{SCALE}/compare/{t}--{m}.json" for (t, m) in METHODS if t in _tables]
        _extra += [f"{REPORTS}/{SCALE}/compare/{t}--{m}.html" for (t, m) in METHODS if t in _tables]
        _inputs = table_files(_tables, SCALE) + [f"{REPORTS}/{SCALE}/{t}.html" for t in _tables] + _extra
    else:
        _inputs = not_defined_at_scale(_artifact, _missing)

    rule:
        name:
            f"reproduce_{_artifact}"
        input:
            _inputs,
        localrule: True


for _target, _manifest in FIGURE_TARGETS.items():

    rule:
        name:
            _target
        input:
            _manifest,
        localrule: True


# The scale's CI subset (scales.<scale>.ci_runs, e.g. the rehearsal's C4, ResNeXt-FPN, keypoint and U-Net
# runs): each trained and evaluated, seed 0. Empty at scales that name none.
rule rehearse_ci:
    input:
        [
            f"{RESULTS}/{SCALE}/runs/{run}-seed0/metrics.json"
            for run in REGISTRY["scales"][SCALE].get("ci_runs", [])
        ],
    localrule: True
