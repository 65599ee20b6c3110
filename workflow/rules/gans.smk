# fid_reference -> train_gan@<gan_variant> (see dvc.yaml for the same stages). Anomaly and hybrid
# GAN variants feed evaluate (models.smk) with their discriminators' model files.


rule fid_reference:
    input:
        code_deps("fid_reference"),
        fid_prepared_dir,
    output:
        "data/fid/real.npz",
        "metrics/gan/fid_reference.json",
    log:
        "logs/fid_reference.log",
    threads: workflow.cores
    params:
        params_yaml=read_keys("gan.datasets", "gan.prepared_size", "gan.holdout", "gan.seed", "gan.fid", "compute"),
        prepared=fid_prepared_dir,
    shell:
        "python stages/fid_reference.py --prepared {params.prepared}"
        " --out data/fid/real.npz --metrics metrics/gan/fid_reference.json 2> {log}"



rule train_gan:
    input:
        code_deps("train_gan"),
        gan_prepared_dir,
        "data/fid/real.npz",
    output:
        directory("data/models/{gan_variant}"),
        "metrics/gan/variants/{gan_variant}.json",
        "metrics/gan_live/{gan_variant}/metrics.json",
        directory("metrics/gan_live/{gan_variant}/plots/metrics"),
        "metrics/gan/samples/{gan_variant}.jpg",
    log:
        "logs/train_gan/{gan_variant}.log",
    threads: workflow.cores
    params:
        params_yaml=read_keys("gan_variants.{gan_variant}", "gan.datasets", "gan.holdout", "gan.seed", "gan.fid",
                              "compute"),
        prepared=gan_prepared_dir,
    shell:
        "python stages/train_gan.py --variant {wildcards.gan_variant} --prepared {params.prepared}"
        " --fid-reference data/fid/real.npz --out data/models/{wildcards.gan_variant}"
        " --samples metrics/gan/samples/{wildcards.gan_variant}.jpg"
        " --metrics metrics/gan/variants/{wildcards.gan_variant}.json --live metrics/gan_live/{wildcards.gan_variant}"
        " --timings logs/train_gan/{wildcards.gan_variant}.json"
        " --checkpoint data/checkpoints/gan_{wildcards.gan_variant}/last.pt 2> {log}"
