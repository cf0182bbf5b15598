# One target rule per paper artifact: reproduce_table1, reproduce_table2 (= 2a-2e), reproduce_table2a,
# ..., reproduce_unet_table2, reproduce_all; and one per figure (reproduce_maskrcnn_fig3, ...), all of
# which reproduce_all includes. Each asks for its outputs at the configured scale (config: scale).
FIGURE_TARGETS = {f"reproduce_{name}": f"{REPORTS}/{SCALE}/figures/{name}.json" for name in FIGURES}

for _artifact in ARTIFACTS:
    # the artifact's tables plus those whose runs it all trains (cheap; keeps shared runs consistent)
    _tables = assembled_with(_artifact, REGISTRY)
    _extra = list(FIGURE_TARGETS.values()) if _artifact == "all" else []
    _extra += [f"{RESULTS}/{SCALE}/compare/{t}--{m}.json" for (t, m) in METHODS if t in _tables]

    rule:
        name:
            f"reproduce_{_artifact}"
        input:
            table_files(_tables, SCALE) + [f"{REPORTS}/{SCALE}/{t}.html" for t in _tables] + _extra,
        localrule: True


for _target, _manifest in FIGURE_TARGETS.items():

    rule:
        name:
            _target
        input:
            _manifest,
        localrule: True
