"""The data floor under the components: the source, landed batches and the validated store.

:mod:`~pipelines.data.source` reads the configured source into the contract's landed schema,
:mod:`~pipelines.data.landing` lands batches as immutable, content-addressed files and
:mod:`~pipelines.data.validated` holds what the quality gate published. Quality writes here,
training, serving and monitoring read here; this package imports only the kernel and the config
(never a component), and batch ids and periods come from :mod:`pipelines.core.periods`.
"""
