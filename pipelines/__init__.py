"""Step logic of the MLOps reference pipeline.

Everything here is plain, typed Python that runs without Airflow: the DAG files in
``dags/`` only wire these functions together.  Heavy libraries (GX, MLflow,
Evidently, scikit-learn) are imported inside the functions that need them, so that
importing a step module stays cheap for the DAG processor.
"""
