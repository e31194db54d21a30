# Stage 4: dump validation and test logits of every model to Parquet.


rule predict:
    input:
        unpack(data_files),
        unpack(task_inputs),
        model=f"{RESULTS}/models/{{dataset}}/{{task}}/{{arch}}/{{run}}/model.pt",
    output:
        valid=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/valid.parquet",
        test=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/test.parquet",
    log:
        f"{RESULTS}/logs/predict/{{dataset}}/{{task}}/{{arch}}/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{dataset}}/{{task}}/{{arch}}/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: 1  # CPU default: one thread per job; GPU profiles raise it
    params:
        triggered=optional_input("triggered"),
        batch_size=config["train"]["eval_batch_size"],
    shell:
        "python -m prunebias.cli predict --index {input.index} --images {input.images} {params.triggered}"
        " --model {input.model}"
        " --batch-size {params.batch_size} --out valid={output.valid} test={output.test}"
        " --threads {threads} > {log} 2>&1"
