module h2flow.test/interop

go 1.19
