from portevoix_ingest.app import worker

if __name__ == "__main__":
    worker.run()
