# train@<variant> -> evaluate (every variant, every test set, one process) -> report (see dvc.yaml
# for the same stages).
# Code inputs are each stage's import closure (deepfake_detection.stagedeps), file by file.


rule train:
    input:
        code_deps("train"),
        prepared_dir,
    output:
        "data/models/{variant}/model.pt",
        "data/models/{variant}/last.pt",
        "data/models/{variant}/val_scores.csv",
        directory("data/models/{variant}/seeds"),
        "metrics/train/{variant}.json",
        "metrics/dvclive/{variant}/metrics.json",
        directory("metrics/dvclive/{variant}/plots/metrics"),
    log:
        "logs/train/{variant}.log",
    threads: workflow.cores
    params:
        params_yaml=read_keys("train", "variants.{variant}", "compute"),
        prepared=prepared_dir,
    shell:
        "python stages/train.py --variant {wildcards.variant} --prepared {params.prepared}"
        " --model data/models/{wildcards.variant}/model.pt --last data/models/{wildcards.variant}/last.pt"
        " --val-scores data/models/{wildcards.variant}/val_scores.csv"
        " --seed-models data/models/{wildcards.variant}/seeds"
        " --metrics metrics/train/{wildcards.variant}.json"
        " --live metrics/dvclive/{wildcards.variant}"
        " --timings logs/train/{wildcards.variant}.json"
        " --checkpoint data/checkpoints/{wildcards.variant}/last.pt 2> {log}"


# One job for every variant and test set (each process pays torch's imports once).
rule evaluate:
    input:
        code_deps("evaluate"),
        expand("data/prepared/{size}", size=config["prepare"]["sizes"]),
        expand("data/models/{variant}/model.pt", variant=VARIANTS),
        expand("data/models/{variant}/val_scores.csv", variant=VARIANTS),
        expand("data/models/{variant}/seeds", variant=VARIANTS),
        expand("data/models/{gan_variant}", gan_variant=GAN_VARIANTS),
    output:
        directory("data/eval"),
        directory("metrics/eval"),
        directory("metrics/roc"),
    log:
        "logs/evaluate.log",
    params:
        params_yaml=read_keys("train", "variants", "gan_variants", "evaluate.batch_size", "evaluate.bootstrap",
                              "evaluate.test_sets", "compute"),
    shell:
        "python stages/evaluate.py --models-root data/models --prepared-root data/prepared"
        " --metrics-dir metrics/eval --scores-dir data/eval --roc-dir metrics/roc"
        " 2> {log}"


rule report:
    input:
        code_deps("report"),
        "metrics/eval",
        "data/eval",
        expand("metrics/gan/variants/{gan_variant}.json", gan_variant=GAN_VARIANTS),
        "metrics/gan/fid_reference.json",
        expand("metrics/gan/samples/{gan_variant}.jpg", gan_variant=GAN_VARIANTS),
    output:
        "metrics/leaderboard.md",
    log:
        "logs/report.log",
    params:
        params_yaml=read_keys("variants", "gan_variants", "gan.published_reference", "evaluate.test_sets",
                              "evaluate.bootstrap"),
    shell:
        "python stages/report.py --metrics-root metrics/eval --scores-root data/eval"
        " --gan-metrics metrics/gan/variants --fid-reference metrics/gan/fid_reference.json --gan-samples metrics/gan/samples"
        " --out metrics/leaderboard.md 2> {log}"
