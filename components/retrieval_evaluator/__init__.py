"""RetrievalEvaluator: B1 retrieval metrics by exact search, and a blessing for the Pusher."""
