import Hummingbird
import ArgumentParser
import Configuration
print("itaku")
