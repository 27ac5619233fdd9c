fn main() {
    println!("zoocore: not built yet");
}
