from portevoix_moderation.app import worker

if __name__ == "__main__":
    worker.run()
