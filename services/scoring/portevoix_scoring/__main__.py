from portevoix_scoring.app import worker

if __name__ == "__main__":
    worker.run()
