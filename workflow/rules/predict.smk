# Stage 4: dump validation and test logits of every model to Parquet, and time the model on the CPU.


rule predict:
    input:
        unpack(data_files),
        unpack(task_inputs),
        model=f"{RESULTS}/models/{{dataset}}/{{task}}/{{arch}}/{{run}}/model.pt",
    output:
        valid=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/valid.parquet",
        test=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/test.parquet",
        # timed, so never byte-identical between runs: kept out of the prediction files
        cost=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/cost.json",
    log:
        f"{RESULTS}/logs/predict/{{dataset}}/{{task}}/{{arch}}/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{dataset}}/{{task}}/{{arch}}/{{run}}.tsv"
    wildcard_constraints:
        dataset=one_of(IMAGE_DATASETS),
    conda:
        CONDA_ENV
    threads: 1  # CPU default: one thread per job; GPU profiles raise it
    params:
        triggered=optional_input("triggered"),
        batch_size=config["train"]["eval_batch_size"],
    shell:
        "python -m prunebias.cli predict --index {input.index} --images {input.images} {params.triggered}"
        " --model {input.model} --cost {output.cost}"
        " --batch-size {params.batch_size} --out valid={output.valid} test={output.test}"
        " --threads {threads} > {log} 2>&1"


# Audit-only data sets: the user's prediction files of each manifest row, checked against the
# labels and written in the same contract as predict's. The files are inputs: editing one
# redoes its model's analysis, and nothing else.
rule import_predictions:
    input:
        unpack(index_only),
        unpack(user_prediction_files),
    output:
        valid=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/valid.parquet",
        test=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/test.parquet",
    log:
        f"{RESULTS}/logs/import_predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import_predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}.tsv"
    wildcard_constraints:
        dataset=one_of(AUDIT_DATASETS),
    conda:
        CONDA_ENV
    params:
        run=audit_run,
        scores=lambda w: config["datasets"][w.dataset]["scores"],
    shell:
        "python -m prunebias.cli import-predictions --index {input.index}"
        " --files valid={input.valid_file} test={input.test_file} --run {params.run:q} --scores {params.scores}"
        " --out valid={output.valid} test={output.test} > {log} 2>&1"
