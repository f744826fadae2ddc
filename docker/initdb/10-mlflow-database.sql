-- Run once by the postgres image when its data volume is empty (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates the Optuna database ("optuna"); MLflow's tracking server gets its own.
CREATE DATABASE mlflow;
