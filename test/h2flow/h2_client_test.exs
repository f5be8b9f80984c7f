defmodule H2Flow.Test.H2ClientTest do
  use ExUnit.Case, async: true

  import Bitwise

  alias H2Flow.Test.H2Client
  alias H2Flow.Test.H2Client.HPACK

  doctest H2Flow.Test.H2Client.HPACK

  defp hex(s), do: s |> String.replace(~r/\s/, "") |> Base.decode16!(case: :lower)

  defp decode_series(limit, steps) do
    Enum.reduce(steps, H2Client.new_table(limit), fn {block, fields, table}, t ->
      assert {:ok, ^fields, t} = H2Client.decode_block(t, hex(block))
      assert for({n, v} <- t.entries, do: {n, v, byte_size(n) + byte_size(v) + 32}) == table
      assert t.size == Enum.sum(for {_, _, s} <- table, do: s)
      t
    end)
  end

  describe "HPACK decoding: RFC 7541 Appendix C" do
    test "C.1 integers" do
      assert IO.iodata_to_binary(HPACK.encode_int(10, 5, 0)) == <<0b01010>>

      assert IO.iodata_to_binary(HPACK.encode_int(1337, 5, 0)) ==
               <<31, 0b10011010, 0b00001010>>

      assert IO.iodata_to_binary(HPACK.encode_int(42, 8, 0)) == <<42>>
      assert HPACK.decode_int(<<0b111_01010>>, 5) == {:ok, 10, ""}
      assert HPACK.decode_int(<<42, "x">>, 8) == {:ok, 42, "x"}
      assert HPACK.decode_int(<<31, 0b10011010>>, 5) == {:error, :truncated_integer}

      assert {:error, {:integer_overflow, _}} =
               HPACK.decode_int(<<255, 255, 255, 255, 255, 255, 1>>, 8)

      for n <- [0, 1, 30, 31, 32, 127, 128, 254, 255, 256, 16_383, 16_384, 4_294_967_295],
          prefix <- 1..8 do
        assert HPACK.decode_int(IO.iodata_to_binary(HPACK.encode_int(n, prefix, 0)), prefix) ==
                 {:ok, n, ""}
      end
    end

    test "C.2 field representations" do
      t = H2Client.new_table()

      assert {:ok, [{"custom-key", "custom-header"}], t1} =
               H2Client.decode_block(
                 t,
                 hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")
               )

      assert t1.entries == [{"custom-key", "custom-header"}] and t1.size == 55

      assert {:ok, [{":path", "/sample/path"}], ^t} =
               H2Client.decode_block(t, hex("040c 2f73 616d 706c 652f 7061 7468"))

      assert {:ok, [{"password", "secret"}], ^t} =
               H2Client.decode_block(t, hex("1008 7061 7373 776f 7264 0673 6563 7265 74"))

      assert {:ok, [{":method", "GET"}], ^t} = H2Client.decode_block(t, <<0x82>>)
    end

    test "C.3 requests without Huffman coding" do
      decode_series(4096, [
        {"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
         [
           {":method", "GET"},
           {":scheme", "http"},
           {":path", "/"},
           {":authority", "www.example.com"}
         ], [{":authority", "www.example.com", 57}]},
        {"8286 84be 5808 6e6f 2d63 6163 6865",
         [
           {":method", "GET"},
           {":scheme", "http"},
           {":path", "/"},
           {":authority", "www.example.com"},
           {"cache-control", "no-cache"}
         ], [{"cache-control", "no-cache", 53}, {":authority", "www.example.com", 57}]},
        {"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
         [
           {":method", "GET"},
           {":scheme", "https"},
           {":path", "/index.html"},
           {":authority", "www.example.com"},
           {"custom-key", "custom-value"}
         ],
         [
           {"custom-key", "custom-value", 54},
           {"cache-control", "no-cache", 53},
           {":authority", "www.example.com", 57}
         ]}
      ])
    end

    test "C.4 requests with Huffman coding" do
      decode_series(4096, [
        {"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
         [
           {":method", "GET"},
           {":scheme", "http"},
           {":path", "/"},
           {":authority", "www.example.com"}
         ], [{":authority", "www.example.com", 57}]},
        {"8286 84be 5886 a8eb 1064 9cbf",
         [
           {":method", "GET"},
           {":scheme", "http"},
           {":path", "/"},
           {":authority", "www.example.com"},
           {"cache-control", "no-cache"}
         ], [{"cache-control", "no-cache", 53}, {":authority", "www.example.com", 57}]},
        {"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
         [
           {":method", "GET"},
           {":scheme", "https"},
           {":path", "/index.html"},
           {":authority", "www.example.com"},
           {"custom-key", "custom-value"}
         ],
         [
           {"custom-key", "custom-value", 54},
           {"cache-control", "no-cache", 53},
           {":authority", "www.example.com", 57}
         ]}
      ])
    end

    @date1 "Mon, 21 Oct 2013 20:13:21 GMT"
    @date2 "Mon, 21 Oct 2013 20:13:22 GMT"
    @cookie "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
    @response1 [
      {":status", "302"},
      {"cache-control", "private"},
      {"date", @date1},
      {"location", "https://www.example.com"}
    ]
    @response2 [
      {":status", "307"},
      {"cache-control", "private"},
      {"date", @date1},
      {"location", "https://www.example.com"}
    ]
    @response3 [
      {":status", "200"},
      {"cache-control", "private"},
      {"date", @date2},
      {"location", "https://www.example.com"},
      {"content-encoding", "gzip"},
      {"set-cookie", @cookie}
    ]
    @table1 [
      {"location", "https://www.example.com", 63},
      {"date", @date1, 65},
      {"cache-control", "private", 52},
      {":status", "302", 42}
    ]
    @table2 [
      {":status", "307", 42},
      {"location", "https://www.example.com", 63},
      {"date", @date1, 65},
      {"cache-control", "private", 52}
    ]
    @table3 [{"set-cookie", @cookie, 98}, {"content-encoding", "gzip", 52}, {"date", @date2, 65}]

    test "C.5 responses without Huffman coding, evicting from a 256-octet table" do
      decode_series(256, [
        {"""
         4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d
         """, @response1, @table1},
        {"4803 3330 37c1 c0bf", @response2, @table2},
        {"""
         88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31
         """, @response3, @table3}
      ])
    end

    test "C.6 responses with Huffman coding, evicting from a 256-octet table" do
      decode_series(256, [
        {"""
         4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3
         """, @response1, @table1},
        {"4883 640e ffc1 c0bf", @response2, @table2},
        {"""
         88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07
         """, @response3, @table3}
      ])
    end
  end

  describe "HPACK decoding: tables, size updates, errors" do
    test "the Huffman codes of Appendix B" do
      for {sym, code, len} <- [
            {0, 0x1FF8, 13},
            {?\s, 0x14, 6},
            {?!, 0x3F8, 10},
            {?/, 0x18, 6},
            {?0, 0x0, 5},
            {?A, 0x21, 6},
            {?a, 0x3, 5},
            {?z, 0x7B, 7},
            {?~, 0x1FFD, 13},
            {255, 0x3FFFFEE, 26},
            {256, 0x3FFFFFFF, 30}
          ] do
        assert HPACK.huffman_code(sym) == {code, len}
      end

      all = :binary.list_to_bin(Enum.to_list(0..255))
      assert HPACK.huffman_decode(HPACK.huffman_encode(all)) == {:ok, all}
    end

    test "Huffman errors: EOS, long or wrong padding" do
      assert HPACK.huffman_decode(<<0x3FFFFFFF::30, 0b11::2>>) == {:error, :huffman_eos}
      # "0" (00000) then 11 bits of ones: padding longer than 7 bits.
      assert HPACK.huffman_decode(<<0::5, 0x7FF::11>>) == {:error, :huffman_bad_padding}
      # "0" then 3 padding bits that are not all ones.
      assert HPACK.huffman_decode(<<0::5, 0b101::3>>) == {:error, :huffman_bad_padding}
      assert HPACK.huffman_decode(<<0::5, 0b111::3>>) == {:ok, "0"}
    end

    test "size updates at the start of a block evict; elsewhere or above the limit they are errors" do
      {:ok, _, t} =
        H2Client.decode_block(
          H2Client.new_table(),
          hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")
        )

      assert t.size == 55

      # 0x3f 0xe1 0x1f = size update to 4096 after one to 0: both at the start of the block.
      assert {:ok, [{":method", "GET"}], t0} =
               H2Client.decode_block(t, <<0x20, 0x3F, 0xE1, 0x1F, 0x82>>)

      assert t0.entries == [] and t0.size == 0 and t0.max == 4096

      assert H2Client.decode_block(t, <<0x82, 0x20>>) == {:error, :size_update_after_field}

      assert H2Client.decode_block(t, <<0x3F, 0xE2, 0x1F>>) ==
               {:error, {:size_update_above_limit, 4097}}
    end

    test "an entry larger than the table empties it" do
      t = H2Client.new_table(100)
      {:ok, _, t} = H2Client.decode_block(t, <<0x40, 1, "a", 1, "b">>)
      assert t.size == 34
      big = :binary.copy("v", 70)
      assert {:ok, [{"a", ^big}], t} = H2Client.decode_block(t, <<0x40, 1, "a", 70, big::binary>>)
      assert t.entries == [] and t.size == 0
    end

    test "bad indexes and truncated blocks" do
      t = H2Client.new_table()
      assert H2Client.decode_block(t, <<0x80>>) == {:error, :index_zero}
      assert H2Client.decode_block(t, <<0xBE>>) == {:error, {:bad_index, 62}}
      assert H2Client.decode_block(t, <<0x00, 5, "ab">>) == {:error, :truncated_string}
      assert H2Client.decode_block(t, <<0x00>>) == {:error, :truncated_string}
      assert HPACK.static_entry(61) == {"www-authenticate", ""}
      assert HPACK.static_entry(62) == nil
    end

    test "literal blocks decode back to what was encoded" do
      headers = [{":status", "200"}, {"x-long", :binary.copy("a", 300)}, {"", ""}, {"k", "v"}]

      assert {:ok, ^headers, %{entries: []}} =
               H2Client.decode_block(H2Client.new_table(), H2Client.encode_literal_block(headers))
    end
  end

  describe "HPACK decoding of blocks written by the engine" do
    alias H2Flow.Engine

    defp engine_with_streams(n, settings) do
      {:ok, engine} = Engine.new()
      _preface = Engine.flush(engine)
      request = [{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}]

      input = [
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        H2Client.encode_frame(
          :settings,
          0,
          0,
          for({k, v} <- settings, do: <<setting(k)::16, v::32>>)
        ),
        for i <- 0..(n - 1) do
          # HEADERS with END_STREAM and END_HEADERS.
          H2Client.encode_frame(:headers, 5, 2 * i + 1, H2Client.encode_literal_block(request))
        end
      ]

      {:ok, events} = Engine.recv(engine, IO.iodata_to_binary(input))
      assert length(events) == n
      engine
    end

    defp setting(:header_table_size), do: 1
    defp setting(id) when is_integer(id), do: id

    # The header block fragments of the HEADERS frames (type 1) the engine wrote.
    defp response_blocks(engine), do: blocks(Engine.flush(engine))

    defp blocks(<<len::24, type, _flags, _::32, payload::binary-size(len), rest::binary>>),
      do: if(type == 1, do: [payload | blocks(rest)], else: blocks(rest))

    defp blocks(""), do: []

    test "responses with repeated, new and large fields, decoded in order" do
      engine = engine_with_streams(60, [])

      sent =
        for i <- 0..59 do
          headers = [
            {":status", Enum.at(["200", "404", "302", "500"], rem(i, 4))},
            {"content-type", "text/plain"},
            {"server", "h2flow"},
            {"x-request", Integer.to_string(rem(i, 7))},
            {"x-big-#{rem(i, 3)}", :binary.copy(<<?a + rem(i, 26)>>, 100 * rem(i, 11))},
            {"set-cookie", "id=#{i}"}
          ]

          :ok = Engine.send_headers(engine, 2 * i + 1, headers, true)
          headers
        end

      blocks = response_blocks(engine)
      assert length(blocks) == 60

      {decoded, _table} =
        Enum.map_reduce(blocks, H2Client.new_table(), fn block, t ->
          {:ok, headers, t} = H2Client.decode_block(t, block)
          {headers, t}
        end)

      assert decoded == sent
    end

    test "a smaller SETTINGS_HEADER_TABLE_SIZE from the client is honoured with a size update" do
      engine = engine_with_streams(20, [{:header_table_size, 256}])

      sent =
        for i <- 0..19 do
          headers = [
            {":status", "200"},
            {"x-value", :binary.copy("v", 60 + i)},
            {"x-same", "same"}
          ]

          :ok = Engine.send_headers(engine, 2 * i + 1, headers, true)
          headers
        end

      [first | _] = blocks = response_blocks(engine)
      # A size update (001xxxxx) opens the first block after the change (RFC 7541 4.2).
      assert <<0b001::3, _::5, _::binary>> = first

      {decoded, table} =
        Enum.map_reduce(blocks, H2Client.new_table(256), fn block, t ->
          {:ok, headers, t} = H2Client.decode_block(t, block)
          assert t.size <= 256
          {headers, t}
        end)

      assert decoded == sent
      assert table.max <= 256
    end
  end

  describe "over a socket" do
    # A scripted server: writes the given frames (bit syntax, not H2Flow.Frame), each group in
    # one write, waiting for `n` bytes from the client before each group.
    defp scripted_server(groups) do
      {:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true])
      {:ok, port} = :inet.port(listen)
      test = self()

      spawn_link(fn ->
        {:ok, socket} = :gen_tcp.accept(listen)

        received =
          Enum.reduce(groups, "", fn {wait_for, bytes}, acc ->
            acc = read_at_least(socket, acc, wait_for)
            :ok = :gen_tcp.send(socket, bytes)
            acc
          end)

        # Everything the client sent, once it closed the connection.
        send(test, {:server_read, read_at_least(socket, received, :closed)})
      end)

      port
    end

    defp read_at_least(_socket, acc, n) when is_integer(n) and byte_size(acc) >= n, do: acc

    defp read_at_least(socket, acc, n) do
      case :gen_tcp.recv(socket, 0, 5000) do
        {:ok, bytes} -> read_at_least(socket, acc <> bytes, n)
        {:error, :closed} -> acc
      end
    end

    defp f(type, flags, id, payload),
      do: <<byte_size(payload)::24, type, flags, 0::1, id::31, payload::binary>>

    @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    test "recv_frame and recv parse every frame type; stats count reads with WINDOW_UPDATE" do
      block = H2Client.encode_literal_block([{":status", "200"}, {"x", "1"}])
      <<part1::binary-size(5), part2::binary>> = block

      first =
        IO.iodata_to_binary([
          f(4, 0, 0, <<3::16, 10::32, 4::16, 100::32>>),
          f(8, 0, 0, <<1000::32>>),
          f(8, 0, 1, <<2000::32>>)
        ])

      second =
        IO.iodata_to_binary([
          f(1, 0x20 ||| 0x8, 1, <<2, 0::1, 0::31, 16, part1::binary, 0, 0>>),
          f(9, 0, 1, ""),
          f(9, 0x4, 1, part2),
          f(0, 0x8 ||| 0x1, 1, <<1, "body", 0>>),
          f(2, 0, 3, <<1::1, 1::31, 7>>),
          f(3, 0, 3, <<7::32>>),
          f(6, 0x1, 0, "pingpong"),
          f(7, 0, 0, <<0::1, 3::31, 0xB::32, "bye">>),
          f(5, 0x4, 1, <<0::1, 2::31, H2Client.encode_literal_block([{":path", "/p"}])::binary>>),
          f(0xEE, 0x3, 5, "ext"),
          f(8, 0, 0, <<5::32>>)
        ])

      port = scripted_server([{0, first}, {byte_size(@preface) + 9, second}])
      {:ok, conn} = H2Client.connect("localhost", port)

      assert {:ok, conn, {:settings, 0, 0, <<3::16, 10::32, 4::16, 100::32>>}} =
               H2Client.recv_frame(conn)

      assert {:ok, conn, {:window_update, 0, 1000}} = H2Client.recv(conn)
      assert {:ok, conn, {:window_update, 1, 2000}} = H2Client.recv(conn)
      :ok = H2Client.send_preface(conn)

      assert {:ok, conn, {:headers, 1, [{":status", "200"}, {"x", "1"}], false}} =
               H2Client.recv(conn)

      assert {:ok, conn, {:data, 1, "body", true}} = H2Client.recv(conn)
      assert {:ok, conn, {:priority, 3, true, 1, 7}} = H2Client.recv(conn)
      assert {:ok, conn, {:rst_stream, 3, :refused_stream}} = H2Client.recv(conn)
      assert {:ok, conn, {:ping, true, "pingpong"}} = H2Client.recv(conn)
      assert {:ok, conn, {:goaway, 3, :enhance_your_calm, "bye"}} = H2Client.recv(conn)
      assert {:ok, conn, {:push_promise, 1, 2, [{":path", "/p"}]}} = H2Client.recv(conn)
      assert {:ok, conn, {:unknown, 0xEE, 3, 5, "ext"}} = H2Client.recv(conn)
      assert {:ok, conn, {:window_update, 0, 5}} = H2Client.recv(conn)

      assert %{
               frames: 14,
               reads: 2,
               reads_with_window_update: 2,
               window_updates: %{connection: 2, stream: 1}
             } = H2Client.stats(conn)

      assert [{:settings, _, _, _}, {:window_update, _, 0, _} | _] = H2Client.frames(conn)
      assert length(H2Client.frames(conn)) == 14
      H2Client.close(conn)
      assert_receive {:server_read, <<@preface, 0::24, 4, 0, 0::32>>}, 5_000
    end

    test "read_response acknowledges SETTINGS and keeps frames of other streams for later" do
      h200 = H2Client.encode_literal_block([{":status", "200"}, {"server", "test"}])
      h201 = H2Client.encode_literal_block([{":status", "201"}])
      h100 = H2Client.encode_literal_block([{":status", "100"}])
      trailers = H2Client.encode_literal_block([{"grpc-status", "0"}])

      script =
        IO.iodata_to_binary([
          f(4, 0, 0, ""),
          f(1, 0x4, 3, h201),
          f(1, 0x4, 1, h100),
          f(1, 0x4, 1, h200),
          f(0, 0, 3, "three"),
          f(0, 0, 1, "hel"),
          f(0, 0x1, 3, ""),
          f(0, 0, 1, "lo"),
          f(1, 0x5, 1, trailers),
          f(3, 0, 5, <<8::32>>)
        ])

      port = scripted_server([{byte_size(@preface) + 9, script}])
      {:ok, conn} = H2Client.connect(~c"localhost", port)
      :ok = H2Client.send_preface(conn)
      {:ok, conn, 1} = H2Client.request(conn, "GET", "/one")
      {:ok, conn, 3} = H2Client.request(conn, "POST", "/three", [{"content-length", "4"}], "body")
      {:ok, conn, 5} = H2Client.request(conn, "GET", "/five")

      assert {:ok, conn,
              %{
                status: 200,
                headers: [{"server", "test"}],
                body: "hello",
                trailers: [{"grpc-status", "0"}]
              }} = H2Client.read_response(conn, 1)

      assert {:ok, conn, %{status: 201, headers: [], body: "three", trailers: []}} =
               H2Client.read_response(conn, 3)

      assert {:error, _conn, {:rst_stream, :cancel}} = H2Client.read_response(conn, 5)
      H2Client.close(conn)

      assert_receive {:server_read, sent}, 5_000
      <<@preface, 0::24, 4, 0, 0::32, rest::binary>> = sent
      # The SETTINGS ACK follows the requests, sent when read_response met the SETTINGS.
      assert {:ok, frames} = split_frames(rest)

      assert [{1, 0x5, 1}, {1, 0x4, 3}, {0, 0x1, 3}, {1, 0x5, 5}, {4, 0x1, 0}] =
               for({t, fl, id, _} <- frames, do: {t, fl, id})

      [{1, _, 1, block1}, {1, _, 3, block3}, {0, _, 3, "body"} | _] = frames
      host = "localhost:#{port}"

      assert {:ok,
              [{":method", "GET"}, {":scheme", "http"}, {":authority", ^host}, {":path", "/one"}],
              _} = H2Client.decode_block(H2Client.new_table(), block1)

      assert {:ok, [{":method", "POST"} | _], _} =
               H2Client.decode_block(H2Client.new_table(), block3)
    end

    defp split_frames(
           <<len::24, type, flags, _::1, id::31, payload::binary-size(len), rest::binary>>
         ) do
      with {:ok, frames} <- split_frames(rest), do: {:ok, [{type, flags, id, payload} | frames]}
    end

    defp split_frames(<<>>), do: {:ok, []}

    test "timeouts and a closed connection are errors" do
      port = scripted_server([{0, f(4, 0, 0, "")}])
      {:ok, conn} = H2Client.connect("localhost", port)
      assert {:ok, conn, {:settings, false, []}} = H2Client.recv(conn)
      assert {:error, _conn, :timeout} = H2Client.recv(conn, 0)
      H2Client.close(conn)
      assert {:error, _conn, :closed} = H2Client.recv(conn, 100)
    end
  end

  describe "against the engine over TCP and TLS" do
    alias H2Flow.Engine

    # A minimal server: one engine per connection, echoing request bodies.
    defp engine_server(transport, listen) do
      test = self()

      spawn_link(fn ->
        socket = accept(transport, listen)
        {:ok, engine} = Engine.new()
        :ok = transport.send(socket, Engine.flush(engine))
        serve(transport, socket, engine, %{})
        send(test, {:engine_stats, Engine.stats(engine)})
      end)
    end

    defp accept(:gen_tcp, listen) do
      {:ok, socket} = :gen_tcp.accept(listen)
      socket
    end

    defp accept(:ssl, listen) do
      {:ok, socket} = :ssl.transport_accept(listen)
      {:ok, socket} = :ssl.handshake(socket)
      socket
    end

    defp serve(transport, socket, engine, bodies) do
      case transport.recv(socket, 0, 5000) do
        {:ok, bytes} ->
          {:ok, events} = Engine.recv(engine, bytes)
          bodies = Enum.reduce(events, bodies, &on_event(engine, &1, &2))
          :ok = transport.send(socket, Engine.flush(engine))
          serve(transport, socket, engine, bodies)

        {:error, :closed} ->
          :ok
      end
    end

    defp on_event(engine, {:request, id, _, _, _, path, _, _, _, fin}, bodies) do
      bodies = Map.put(bodies, id, {path, []})
      if fin, do: reply(engine, id, bodies), else: bodies
    end

    defp on_event(engine, {:data, id, data, fin}, bodies) do
      :ok = Engine.consume(engine, id, byte_size(data))
      bodies = Map.update!(bodies, id, fn {p, acc} -> {p, [acc | data]} end)
      if fin, do: reply(engine, id, bodies), else: bodies
    end

    defp reply(engine, id, bodies) do
      {path, body} = bodies[id]
      :ok = Engine.send_headers(engine, id, [{":status", "200"}, {"x-path", path}], false)
      send_all(engine, id, IO.iodata_to_binary(body))
      Map.delete(bodies, id)
    end

    # The client opens large windows: nothing blocks.
    defp send_all(engine, id, body) do
      {:ok, taken, false} = Engine.send_body(engine, id, body, true)

      if taken < byte_size(body),
        do: send_all(engine, id, binary_part(body, taken, byte_size(body) - taken))
    end

    defp exchange(conn) do
      # Large windows for the responses: the client does not send WINDOW_UPDATE on its own.
      :ok = H2Client.send_preface(conn, initial_window_size: 2_147_483_647)
      :ok = H2Client.send_window_update(conn, 0, 2_147_483_647 - 65_535)
      {:ok, conn, 1} = H2Client.request(conn, "GET", "/get")

      assert {:ok, conn, %{status: 200, headers: [{"x-path", "/get"}], body: ""}} =
               H2Client.read_response(conn, 1)

      body = :binary.copy("0123456789", 6000)

      {conn, ids} =
        Enum.reduce(1..8, {conn, []}, fn _, {conn, ids} ->
          {:ok, conn, id} =
            H2Client.request(conn, "POST", "/echo", [{"content-length", "60000"}], body)

          {:ok, conn, %{status: 200, body: ^body}} = H2Client.read_response(conn, id)
          {conn, [id | ids]}
        end)

      assert Enum.reverse(ids) == [3, 5, 7, 9, 11, 13, 15, 17]

      # Without content-length the server credits the stream while the body arrives.
      big = :binary.copy("x", 200_000)
      {:ok, conn, 19} = H2Client.request(conn, "POST", "/big", [], big)
      {:ok, conn, %{status: 200, body: ^big}} = H2Client.read_response(conn, 19)

      # Once the PING comes back, every frame the server wrote before it has been read.
      :ok = H2Client.send_ping(conn, "syncsync")
      {:ok, conn, _} = H2Client.recv_until(conn, &match?({:ping, true, "syncsync"}, &1))
      conn
    end

    test "plain TCP: requests, responses, and the server's window updates counted" do
      {:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true])
      {:ok, port} = :inet.port(listen)
      engine_server(:gen_tcp, listen)

      {:ok, conn} = H2Client.connect("localhost", port)
      conn = exchange(conn)
      stats = H2Client.stats(conn)
      H2Client.close(conn)

      assert_receive {:engine_stats, server}, 5000
      assert stats.window_updates == server.window_update_frames

      assert stats.reads_with_window_update <=
               stats.window_updates.connection + stats.window_updates.stream

      assert stats.reads_with_window_update >= 1
      assert stats.frames == Enum.sum(Map.values(server.frames_sent))
    end

    test "TLS with ALPN h2" do
      ec = [key: {:namedCurve, :secp256r1}]

      certs =
        :public_key.pkix_test_data(%{
          server_chain: %{root: ec, peer: ec},
          client_chain: %{root: ec, peer: ec}
        })

      {:ok, listen} =
        :ssl.listen(
          0,
          [:binary, active: false, alpn_preferred_protocols: ["h2"]] ++ certs[:server_config]
        )

      {:ok, {_, port}} = :ssl.sockname(listen)
      engine_server(:ssl, listen)

      {:ok, conn} = H2Client.connect("localhost", port, tls: true)
      assert conn.scheme == "https"
      conn = exchange(conn)
      H2Client.close(conn)
      assert_receive {:engine_stats, %{streams_opened: 10}}, 5000
    end
  end
end
