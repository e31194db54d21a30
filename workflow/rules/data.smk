# Stage 1: generate (synthetic) or decode (CelebA) the data set once, into index + uint8 array.


rule prepare:
    output:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        images=f"{RESULTS}/data/{{dataset}}/images.npy",
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=one_of(IMAGE_DATASETS),
    conda:
        CONDA_ENV
    threads: 4
    params:
        config=lambda w: as_json(config["datasets"][w.dataset]),
    shell:
        "python -m prunebias.cli prepare --config {params.config:q} --index {output.index} --images {output.images}"
        " --threads {threads} > {log} 2>&1"


# An audit-only data set (source: predictions): its labels table as the index; no images.
rule prepare_labels:
    input:
        labels=lambda w: config["datasets"][w.dataset]["labels"],
    output:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=one_of(AUDIT_DATASETS),
    conda:
        CONDA_ENV
    params:
        config=lambda w: as_json(config["datasets"][w.dataset]),
    shell:
        "python -m prunebias.cli prepare-labels --config {params.config:q} --index {output.index} > {log} 2>&1"


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
