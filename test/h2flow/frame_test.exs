defmodule H2Flow.FrameTest do
  use ExUnit.Case, async: true

  import Bitwise

  alias H2Flow.Frame

  alias H2Flow.Frame.{
    Continuation,
    Data,
    Goaway,
    Headers,
    Ping,
    Priority,
    PushPromise,
    RstStream,
    Settings,
    Unknown,
    WindowUpdate
  }

  doctest H2Flow.Frame

  # Frames are written here with bit syntax, never with the code under test.
  defp frame(type, flags, stream_id, payload, reserved \\ 0) do
    <<byte_size(payload)::24, type::8, flags::8, reserved::1, stream_id::31, payload::binary>>
  end

  # One frame of every type, and the struct each must decode to.
  defp every_type do
    [
      {frame(0x0, 0x1 ||| 0x8, 1, <<3, "body", 0, 0, 0>>),
       %Data{stream_id: 1, end_stream: true, data: "body", padding: 3}},
      {frame(0x1, 0x4 ||| 0x8 ||| 0x20, 3, <<2, 1::1, 1::31, 200, "block", 0, 0>>),
       %Headers{
         stream_id: 3,
         end_stream: false,
         end_headers: true,
         priority: {true, 1, 200},
         fragment: "block",
         padding: 2
       }},
      {frame(0x2, 0, 5, <<0::1, 3::31, 15>>),
       %Priority{stream_id: 5, exclusive: false, dependency: 3, weight: 15}},
      {frame(0x3, 0, 7, <<0x8::32>>), %RstStream{stream_id: 7, error_code: :cancel}},
      {frame(
         0x4,
         0,
         0,
         <<0x3::16, 100::32, 0x4::16, 65_535::32, 0x7::16, 1::32, 0xFF01::16, 9::32>>
       ),
       %Settings{
         ack: false,
         params:
           [max_concurrent_streams: 100, initial_window_size: 65_535] ++ [{7, 1}, {0xFF01, 9}]
       }},
      {frame(0x4, 0x1, 0, ""), %Settings{ack: true, params: []}},
      {frame(0x5, 0x4, 1, <<0::1, 2::31, "promise">>),
       %PushPromise{stream_id: 1, promised_stream_id: 2, end_headers: true, fragment: "promise"}},
      {frame(0x6, 0x1, 0, "abcdefgh"), %Ping{ack: true, data: "abcdefgh"}},
      {frame(0x7, 0, 0, <<0::1, 9::31, 0xB::32, "calm down">>),
       %Goaway{last_stream_id: 9, error_code: :enhance_your_calm, debug_data: "calm down"}},
      {frame(0x7, 0, 0, <<0::1, 0::31, 0xABCD::32>>),
       %Goaway{last_stream_id: 0, error_code: 0xABCD, debug_data: ""}},
      # The reserved bit of the header and of the increment is ignored (RFC 9113 4.1, 6.9).
      {frame(0x8, 0, 11, <<1::1, 4096::31>>, 1), %WindowUpdate{stream_id: 11, increment: 4096}},
      {frame(0x9, 0x0, 3, "more"),
       %Continuation{stream_id: 3, end_headers: false, fragment: "more"}},
      {frame(0xFA, 0xAB, 13, "extension"),
       %Unknown{type: 0xFA, flags: 0xAB, stream_id: 13, payload: "extension"}}
    ]
  end

  test "the NIF is loaded" do
    assert H2Flow.Native.nif_loaded()
  end

  test "hand-built frames of all ten types and an unknown one decode to their structs" do
    {bytes, expected} = Enum.unzip(every_type())
    types = bytes |> Enum.map(fn <<_::24, type::8, _::binary>> -> type end) |> Enum.uniq()
    assert Enum.sort(types) == Enum.to_list(0..9) ++ [0xFA]

    assert Frame.decode(IO.iodata_to_binary(bytes)) == {:ok, expected, ""}

    for {b, struct} <- every_type() do
      assert Frame.decode(b <> "tail") == {:ok, [struct], "tail"}
    end
  end

  test "an incomplete frame is left for later" do
    assert Frame.decode("") == {:ok, [], ""}
    assert Frame.decode(<<0, 0>>) == {:ok, [], <<0, 0>>}
    partial = binary_part(frame(0x0, 0, 1, "hello"), 0, 12)
    assert Frame.decode(partial) == {:ok, [], partial}
  end

  describe "encode/1 then decode/1" do
    test "gives back every struct" do
      for {_bytes, struct} <- every_type() do
        assert Frame.decode(IO.iodata_to_binary(Frame.encode(struct))) == {:ok, [struct], ""}
      end
    end

    test "writes the same bytes as the hand-built frames (reserved bits cleared)" do
      for {bytes, struct} <- every_type(), not match?(%WindowUpdate{}, struct) do
        assert IO.iodata_to_binary(Frame.encode(struct)) == bytes
      end

      assert Frame.encode(%WindowUpdate{stream_id: 11, increment: 4096}) ==
               frame(0x8, 0, 11, <<4096::32>>)
    end

    test "iodata fields, padding and priority" do
      frames = [
        %Data{stream_id: 1, data: ["he", ["l", "lo"]], padding: 0},
        %Data{stream_id: 3, data: "", end_stream: true, padding: 255},
        %Headers{
          stream_id: 5,
          fragment: ["a", "b"],
          priority: {false, 0, 255},
          end_headers: false
        },
        %Headers{stream_id: 7, fragment: "", padding: 10, end_stream: true},
        %PushPromise{
          stream_id: 1,
          promised_stream_id: 4,
          fragment: "x",
          padding: 1,
          end_headers: false
        },
        %Goaway{
          last_stream_id: 2_147_483_647,
          error_code: :http_1_1_required,
          debug_data: ["de", "bug"]
        },
        %Unknown{type: 0xFF, flags: 0xFF, stream_id: 0, payload: ""}
      ]

      for f <- frames do
        {:ok, [decoded], ""} = Frame.decode(IO.iodata_to_binary(Frame.encode(f)))
        assert decoded == normalize(f)
      end
    end

    test "settings parameters by atom and by integer" do
      settings = %Settings{
        params: [
          {:header_table_size, 0},
          {2, 0},
          {:max_concurrent_streams, 0xFFFF_FFFF},
          {4, 2_147_483_647},
          {:max_frame_size, 16_777_215},
          {6, 1},
          {:enable_connect_protocol, 1},
          {:no_rfc7540_priorities, 1},
          {0xABCD, 42}
        ]
      }

      bytes = IO.iodata_to_binary(Frame.encode(settings))
      assert <<54::24, 4, 0, 0::32, 1::16, 0::32, 2::16, _::binary>> = bytes

      assert Frame.decode(bytes) ==
               {:ok,
                [
                  %Settings{
                    params:
                      [
                        header_table_size: 0,
                        enable_push: 0,
                        max_concurrent_streams: 0xFFFF_FFFF,
                        initial_window_size: 2_147_483_647,
                        max_frame_size: 16_777_215,
                        max_header_list_size: 1,
                        enable_connect_protocol: 1,
                        no_rfc7540_priorities: 1
                      ] ++ [{0xABCD, 42}]
                  }
                ], ""}
    end

    test "error codes by atom and by integer" do
      for {code, expected} <- [
            {:no_error, :no_error},
            {0xD, :http_1_1_required},
            {0xE, 0xE},
            {0xFFFF_FFFF, 0xFFFF_FFFF}
          ] do
        {:ok, [rst], ""} = Frame.decode(Frame.encode(%RstStream{stream_id: 1, error_code: code}))
        assert rst.error_code == expected
      end
    end

    test "encode_header_block splits at max_frame_size into HEADERS and CONTINUATION" do
      block = :binary.copy("h", 40_000)
      bytes = IO.iodata_to_binary(Frame.encode_header_block(3, block, true, 16_384))

      assert {:ok, [h, c1, c2], ""} = Frame.decode(bytes)
      assert %Headers{stream_id: 3, end_stream: true, end_headers: false} = h
      assert %Continuation{stream_id: 3, end_headers: false} = c1
      assert %Continuation{stream_id: 3, end_headers: true} = c2
      assert Enum.map([h, c1, c2], &byte_size(&1.fragment)) == [16_384, 16_384, 40_000 - 32_768]
      assert IO.iodata_to_binary([h.fragment, c1.fragment, c2.fragment]) == block

      assert {:ok, [%Headers{end_headers: true, fragment: "ab"}], ""} =
               Frame.decode(IO.iodata_to_binary(Frame.encode_header_block(1, "ab", false)))
    end
  end

  defp normalize(%Data{} = f), do: %{f | data: IO.iodata_to_binary(f.data)}
  defp normalize(%Goaway{} = f), do: %{f | debug_data: IO.iodata_to_binary(f.debug_data)}
  defp normalize(%Unknown{} = f), do: %{f | payload: IO.iodata_to_binary(f.payload)}
  defp normalize(%{fragment: fragment} = f), do: %{f | fragment: IO.iodata_to_binary(fragment)}

  describe "invalid frames get the RFC 9113 §6 error code and scope" do
    @conn :connection_error

    # {bytes, code, scope (:connection or a stream id), section cited}
    @cases [
      {"PING of 7 bytes", <<7::24, 6, 0, 0::32, "1234567">>, :frame_size_error, :connection,
       "6.7"},
      {"PING of 9 bytes", <<9::24, 6, 0, 0::32, "123456789">>, :frame_size_error, :connection,
       "6.7"},
      {"PING on a stream", <<8::24, 6, 0, 1::32, "12345678">>, :protocol_error, :connection,
       "6.7"},
      {"SETTINGS of 5 bytes", <<5::24, 4, 0, 0::32, 0::40>>, :frame_size_error, :connection,
       "6.5"},
      {"SETTINGS ACK with a payload", <<6::24, 4, 1, 0::32, 3::16, 1::32>>, :frame_size_error,
       :connection, "6.5"},
      {"SETTINGS on a stream", <<0::24, 4, 0, 1::32>>, :protocol_error, :connection, "6.5"},
      {"SETTINGS_ENABLE_PUSH of 2", <<6::24, 4, 0, 0::32, 2::16, 2::32>>, :protocol_error,
       :connection, "6.5.2"},
      {"SETTINGS_INITIAL_WINDOW_SIZE of 2^31", <<6::24, 4, 0, 0::32, 4::16, 0x8000_0000::32>>,
       :flow_control_error, :connection, "6.5.2"},
      {"SETTINGS_MAX_FRAME_SIZE of 16383", <<6::24, 4, 0, 0::32, 5::16, 16_383::32>>,
       :protocol_error, :connection, "6.5.2"},
      {"SETTINGS_MAX_FRAME_SIZE of 2^24", <<6::24, 4, 0, 0::32, 5::16, 16_777_216::32>>,
       :protocol_error, :connection, "6.5.2"},
      {"RST_STREAM on stream 0", <<4::24, 3, 0, 0::32, 0::32>>, :protocol_error, :connection,
       "6.4"},
      {"RST_STREAM of 3 bytes", <<3::24, 3, 0, 1::32, 0::24>>, :frame_size_error, :connection,
       "6.4"},
      {"WINDOW_UPDATE of 0 on a stream", <<4::24, 8, 0, 3::32, 0::32>>, :protocol_error, 3,
       "6.9"},
      {"WINDOW_UPDATE of 0 on the connection", <<4::24, 8, 0, 0::32, 0::32>>, :protocol_error,
       :connection, "6.9"},
      {"WINDOW_UPDATE of 0 with the reserved bit", <<4::24, 8, 0, 5::32, 1::1, 0::31>>,
       :protocol_error, 5, "6.9"},
      {"WINDOW_UPDATE of 5 bytes", <<5::24, 8, 0, 0::32, 1::40>>, :frame_size_error, :connection,
       "6.9"},
      {"DATA on stream 0", <<1::24, 0, 0, 0::32, "x">>, :protocol_error, :connection, "6.1"},
      {"DATA with padding as long as the payload", <<3::24, 0, 0x8, 1::32, 3, "ab">>,
       :protocol_error, :connection, "6.1"},
      {"padded DATA without a pad length", <<0::24, 0, 0x8, 1::32>>, :frame_size_error,
       :connection, "6.1"},
      {"HEADERS on stream 0", <<1::24, 1, 0x4, 0::32, "x">>, :protocol_error, :connection, "6.2"},
      {"HEADERS with PRIORITY shorter than 5 bytes", <<4::24, 1, 0x24, 1::32, 0::32>>,
       :frame_size_error, :connection, "6.2"},
      {"HEADERS with too much padding", <<3::24, 1, 0xC, 1::32, 3, "ab">>, :protocol_error,
       :connection, "6.2"},
      {"PRIORITY of 4 bytes", <<4::24, 2, 0, 1::32, 0::32>>, :frame_size_error, 1, "6.3"},
      {"PRIORITY on stream 0", <<5::24, 2, 0, 0::32, 0::40>>, :protocol_error, :connection,
       "6.3"},
      {"PUSH_PROMISE on stream 0", <<4::24, 5, 0x4, 0::32, 2::32>>, :protocol_error, :connection,
       "6.6"},
      {"PUSH_PROMISE of 3 bytes", <<3::24, 5, 0x4, 1::32, 0::24>>, :frame_size_error, :connection,
       "6.6"},
      {"GOAWAY on a stream", <<8::24, 7, 0, 1::32, 0::64>>, :protocol_error, :connection, "6.8"},
      {"GOAWAY of 7 bytes", <<7::24, 7, 0, 0::32, 0::56>>, :frame_size_error, :connection, "6.8"},
      {"CONTINUATION on stream 0", <<1::24, 9, 0x4, 0::32, "x">>, :protocol_error, :connection,
       "6.10"}
    ]

    for {name, bytes, code, scope, section} <- @cases do
      test name do
        bytes = unquote(bytes)
        assert {:error, reason} = Frame.decode(bytes)

        message =
          case unquote(scope) do
            :connection ->
              assert {@conn, unquote(code), message} = reason
              message

            id ->
              assert {:stream_error, ^id, unquote(code), message} = reason
              message
          end

        assert message =~ "(RFC 9113 #{unquote(section)})"
      end
    end

    test "a frame above max_frame_size is refused from its header alone" do
      header = <<16_385::24, 0, 0, 1::32>>
      assert {:error, {@conn, :frame_size_error, message}} = Frame.decode(header)
      assert message =~ "RFC 9113 4.2"

      # Up to the size in force it is only incomplete.
      assert {:ok, [], ^header} = Frame.decode(header, max_frame_size: 16_385)
      big = frame(0x0, 0, 1, :binary.copy("x", 20_000))
      assert {:ok, [%Data{data: data}], ""} = Frame.decode(big, max_frame_size: 20_000)
      assert byte_size(data) == 20_000
      assert {:error, {@conn, :frame_size_error, _}} = Frame.decode(big, max_frame_size: 19_999)
    end

    test "the first invalid frame stops decoding" do
      valid = frame(0x6, 0, 0, "12345678")

      assert {:error, {@conn, :frame_size_error, _}} =
               Frame.decode(valid <> <<3::24, 6, 0, 0::32, "abc">> <> valid)
    end

    test "bad options raise ArgumentError" do
      assert_raise ArgumentError, fn -> Frame.decode("", max_frame_size: 100) end
      assert_raise ArgumentError, fn -> Frame.decode("", max_frame_size: 16_777_216) end
      assert_raise ArgumentError, fn -> Frame.decode("", max_frame_size: :big) end
    end
  end

  test "a byte stream split at every boundary decodes to the same frames" do
    {bytes, expected} = Enum.unzip(every_type())
    stream = IO.iodata_to_binary(bytes)

    for at <- 0..byte_size(stream) do
      <<first::binary-size(at), second::binary>> = stream
      assert {:ok, frames1, rest} = Frame.decode(first)
      assert {:ok, frames2, ""} = Frame.decode(rest <> second)
      assert frames1 ++ frames2 == expected, "split at #{at}"
    end
  end

  describe "DATA payloads are sub-binaries of the input" do
    test "for one large frame" do
      input = frame(0x0, 0, 1, :binary.copy("d", 16_000)) <> frame(0x6, 0, 0, "12345678")
      assert {:ok, [%Data{data: data}, %Ping{}], ""} = Frame.decode(input)
      assert :binary.referenced_byte_size(data) == byte_size(input)
    end

    test "for input decoded in more than one NIF call" do
      frames = for i <- 1..40, do: frame(0x0, 0, i, :binary.copy(<<i>>, 16_384))
      input = IO.iodata_to_binary(frames)
      assert byte_size(input) > 512 * 1024

      assert {:ok, decoded, ""} = Frame.decode(input)
      assert length(decoded) == 40

      for {%Data{stream_id: i, data: data}, i} <- Enum.with_index(decoded, 1) do
        assert data == :binary.copy(<<i>>, 16_384)
        assert :binary.referenced_byte_size(data) == byte_size(input)
      end
    end
  end

  test "100,000 random byte strings decode without raising" do
    seed = ExUnit.configuration()[:seed]
    :rand.seed(:exsss, {seed, 7, 11})

    for _ <- 1..100_000 do
      bytes = random_input()
      max = Enum.random([16_384, 16_384, 20_000, 16_777_215])

      case Frame.decode(bytes, max_frame_size: max) do
        {:ok, frames, rest} ->
          assert is_list(frames) and is_binary(rest)
          assert Enum.all?(frames, &is_struct/1)
          assert byte_size(rest) < byte_size(bytes) or frames == []

        {:error, {:connection_error, code, message}} ->
          assert is_atom(code) and is_binary(message)

        {:error, {:stream_error, id, code, message}} ->
          assert id > 0 and is_atom(code) and is_binary(message)
      end
    end
  end

  # Mostly frame-shaped: a header with a small length, a type near the defined ones, random flags
  # and stream, and a payload that may be short or followed by more bytes.
  defp random_input do
    case :rand.uniform(4) do
      1 ->
        random_bytes(:rand.uniform(40) - 1)

      _ ->
        len = Enum.random([0, 1, 3, 4, 5, 6, 7, 8, 9, 12, :rand.uniform(64)])
        type = :rand.uniform(13) - 1
        flags = Enum.random([0, 1, 4, 8, 0x20, 0x2D, :rand.uniform(256) - 1])
        id = Enum.random([0, 1, 2, 3, 0x7FFF_FFFF, :rand.uniform(1 <<< 31) - 1])
        payload = random_bytes(max(0, len + Enum.random([-2, -1, 0, 0, 0, 0, 1, 9])))
        <<len::24, type::8, flags::8, :rand.uniform(2) - 1::1, id::31, payload::binary>>
    end
  end

  defp random_bytes(n), do: for(_ <- 1..n//1, into: <<>>, do: <<:rand.uniform(256) - 1>>)

  describe "encode/1 raises ArgumentError on values that cannot be encoded" do
    @bad [
      %Ping{data: "1234567"},
      %Ping{data: :eight},
      %Data{stream_id: 0x8000_0000},
      %Data{stream_id: -1},
      %Data{data: :not_iodata},
      %Data{padding: 256},
      %Data{end_stream: :yes},
      %Headers{priority: {true, 1, 256}},
      %Headers{priority: :high},
      %Priority{weight: 300},
      %RstStream{error_code: :no_such_code},
      %RstStream{error_code: -1},
      %Settings{params: [{:no_such_setting, 1}]},
      %Settings{params: [{:max_frame_size, 0x1_0000_0000}]},
      %Settings{params: [{0x1_0000, 1}]},
      %Settings{params: :none},
      %WindowUpdate{increment: -1},
      %Goaway{error_code: "cancel"},
      %Unknown{type: 256},
      %URI{}
    ]

    for frame <- @bad do
      test inspect(frame) do
        assert_raise ArgumentError, fn -> Frame.encode(unquote(Macro.escape(frame))) end
      end
    end

    test "payloads longer than 2^24-1 bytes" do
      big = :binary.copy("x", 16_777_216)
      assert_raise ArgumentError, fn -> Frame.encode(%Data{data: big}) end

      assert_raise ArgumentError, fn ->
        Frame.encode(%Data{data: binary_part(big, 0, 16_777_215), padding: 0})
      end

      assert_raise ArgumentError, fn -> Frame.encode(%Unknown{payload: big}) end
      assert byte_size(Frame.encode(%Data{data: binary_part(big, 0, 16_777_215)})) == 16_777_224
    end

    test "encode_header_block" do
      assert_raise ArgumentError, fn -> Frame.encode_header_block(0, "x", true) end
      assert_raise ArgumentError, fn -> Frame.encode_header_block(1, :x, true) end
      assert_raise FunctionClauseError, fn -> Frame.encode_header_block(1, "x", :yes) end
    end
  end
end
