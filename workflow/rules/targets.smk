# One target rule per paper artifact: reproduce_table1, reproduce_table2 (= 2a-2e), reproduce_table2a,
# ..., reproduce_unet_table2, reproduce_all. Each asks for the artifact's tables and report pages at the
# configured scale (config: scale).
for _artifact, _tables in ARTIFACTS.items():

    rule:
        name:
            f"reproduce_{_artifact}"
        input:
            table_files(_tables, SCALE) + [f"{REPORTS}/{SCALE}/{t}.html" for t in _tables],
        localrule: True
