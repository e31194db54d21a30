# Stage 1: generate (synthetic) or decode (CelebA) the data set once, into index + uint8 array.


rule prepare:
    output:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        images=f"{RESULTS}/data/{{dataset}}/images.npy",
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    conda:
        CONDA_ENV
    threads: 4
    params:
        config=lambda w: as_json(config["datasets"][w.dataset]),
    shell:
        "python -m prunebias.cli prepare --config {params.config:q} --index {output.index} --images {output.images}"
        " --threads {threads} > {log} 2>&1"


# Backdoor tasks: which samples carry the trigger, chosen once by a generator seeded with
# experiments.backdoor.seed (never the training seed) and saved with the data.
rule triggered_ids:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
    output:
        f"{RESULTS}/data/{{dataset}}/tasks/{{task}}.parquet",
    log:
        f"{RESULTS}/logs/triggered_ids/{{dataset}}/{{task}}.log",
    wildcard_constraints:
        task=r"backdoor-[A-Za-z0-9_\-]+",
    conda:
        CONDA_ENV
    params:
        task=lambda w: as_json(task_spec(config, w.task)),
    shell:
        "python -m prunebias.cli triggered-ids --index {input.index} --task {params.task:q}"
        " --out {output} > {log} 2>&1"
