[
  inputs: ["mix.exs", ".formatter.exs", "{config,lib,test,mix}/**/*.{ex,exs}"]
]
