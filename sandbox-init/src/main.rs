fn main() {
    std::process::exit(sandbox_init::boot::main());
}
