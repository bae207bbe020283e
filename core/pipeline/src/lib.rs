//! winchester processing side: pipelines, handlers, pipeline-worker, replay.
