defmodule H2Flow.NativeTest do
  use ExUnit.Case, async: true

  test "the NIF library is loaded" do
    assert H2Flow.Native.nif_loaded() == true
  end
end
